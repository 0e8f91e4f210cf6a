from messaging.alembic_env import run_migrations
from tasks.models import Base

run_migrations(Base.metadata)
