pub mod rest_proxy;
pub mod schema_registry;
