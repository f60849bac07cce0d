//! Table declarations: a file under `tables/` names a table and its key and value types
//! with `register_table!`; the settings give it partitions, changelog and codecs.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A table's name and types, collected at link time.
#[derive(Clone, Copy)]
pub struct TableDecl {
    pub name: &'static str,
    pub file: &'static str,
    pub key_type: &'static str,
    pub value_type: &'static str,
    /// Checks that a JSON value is a valid key and returns it normalised.
    pub parse_key: fn(serde_json::Value) -> Result<serde_json::Value, String>,
    pub key_id: fn() -> std::any::TypeId,
    pub value_id: fn() -> std::any::TypeId,
}

impl TableDecl {
    pub const fn new(
        name: &'static str,
        file: &'static str,
        key_type: &'static str,
        value_type: &'static str,
        parse_key: fn(serde_json::Value) -> Result<serde_json::Value, String>,
        key_id: fn() -> std::any::TypeId,
        value_id: fn() -> std::any::TypeId,
    ) -> Self {
        Self {
            name,
            file,
            key_type,
            value_type,
            parse_key,
            key_id,
            value_id,
        }
    }

    /// A declaration for code-registered tables (tests, embedding).
    pub fn of<K: Serialize + DeserializeOwned + 'static, V: 'static>(name: &'static str) -> Self {
        Self::new(
            name,
            "<registered in code>",
            std::any::type_name::<K>(),
            std::any::type_name::<V>(),
            parse_key_as::<K>,
            std::any::TypeId::of::<K>,
            std::any::TypeId::of::<V>,
        )
    }

    /// A key typed in a URL or on the command line: JSON if it parses as a valid key,
    /// else the text itself as a JSON string.
    pub fn key_from_text(&self, text: &str) -> Result<serde_json::Value, String> {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
            if let Ok(k) = (self.parse_key)(v) {
                return Ok(k);
            }
        }
        (self.parse_key)(serde_json::Value::String(text.to_string())).map_err(|e| {
            format!(
                "'{text}' is not a key of table {} ({}): {e}",
                self.name, self.key_type
            )
        })
    }
}

pub fn parse_key_as<K: Serialize + DeserializeOwned>(
    v: serde_json::Value,
) -> Result<serde_json::Value, String> {
    let k: K = serde_json::from_value(v).map_err(|e| e.to_string())?;
    serde_json::to_value(&k).map_err(|e| e.to_string())
}

inventory::collect!(TableDecl);

/// Declares a table: `register_table!("counts", String, u64);`
#[macro_export]
macro_rules! register_table {
    ($name:literal, $key:ty, $value:ty) => {
        $crate::inventory::submit! {
            $crate::table::TableDecl::new(
                $name,
                file!(),
                stringify!($key),
                stringify!($value),
                $crate::table::decl::parse_key_as::<$key>,
                ::std::any::TypeId::of::<$key>,
                ::std::any::TypeId::of::<$value>,
            )
        }
    };
}

/// The tables declared in the binary, by name.
#[derive(Clone, Default)]
pub struct TableRegistry {
    decls: BTreeMap<String, TableDecl>,
}

impl TableRegistry {
    pub fn collected() -> Self {
        let mut r = Self::default();
        for d in inventory::iter::<TableDecl> {
            r.decls.insert(d.name.to_string(), *d);
        }
        r
    }

    pub fn insert(&mut self, d: TableDecl) {
        self.decls.insert(d.name.to_string(), d);
    }

    pub fn get(&self, name: &str) -> Option<&TableDecl> {
        self.decls.get(name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.decls.keys().map(String::as_str).collect()
    }
}
