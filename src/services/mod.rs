pub mod schema_registry;
