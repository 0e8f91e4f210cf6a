from accounting.models import Base
from messaging.alembic_env import run_migrations

run_migrations(Base.metadata)
