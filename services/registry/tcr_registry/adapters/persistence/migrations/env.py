from alembic import context
from sqlalchemy import engine_from_config, pool

from tcr_registry.adapters.persistence.models import EVENT_STORE_TABLES, metadata

config = context.config


def include_object(obj, name, type_, reflected, compare_to):
    return not (type_ == "table" and name in EVENT_STORE_TABLES)


connectable = config.attributes.get("connection") or engine_from_config(
    config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
)
with connectable.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_object=include_object,
        version_table="registry_alembic_version",
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()
