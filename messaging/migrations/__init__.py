"""The messaging tables' own branch of migrations (label ``messaging``): the outbox and the
inbox that every service's database carries. Each service's migrations package names this
one in ``ALONGSIDE``, so its database gets both branches; the revisions here have no
``env.py`` of their own and run in the service's environment.
"""
