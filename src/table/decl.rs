//! Table declarations: a file under `tables/` declares each table once, with
//! `register_table!(pub Counts = "counts", String => u64)`: a type `Counts` that names the
//! table and carries its key and value types ([`TableSpec`]), so that an agent's
//! `ctx.table::<Counts>()` is typed by the compiler — no name repeated, no run-time type
//! check. The settings give the table its partitions, changelog and codecs.

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
}

/// A declared table: its name and its key and value types.
pub trait TableSpec: 'static {
    const NAME: &'static str;
    type Key: Serialize + DeserializeOwned + Send + Sync + 'static;
    type Value: Serialize + DeserializeOwned + Send + Sync + 'static;
}

impl TableDecl {
    pub const fn new(
        name: &'static str,
        file: &'static str,
        key_type: &'static str,
        value_type: &'static str,
        parse_key: fn(serde_json::Value) -> Result<serde_json::Value, String>,
    ) -> Self {
        Self {
            name,
            file,
            key_type,
            value_type,
            parse_key,
        }
    }

    /// The declaration of `T`, for tables registered in code (tests, embedding).
    pub fn of<T: TableSpec>() -> Self {
        Self::new(
            T::NAME,
            "<registered in code>",
            std::any::type_name::<T::Key>(),
            std::any::type_name::<T::Value>(),
            parse_key_as::<T::Key>,
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

/// Declares a table once: `register_table!(pub Counts = "counts", String => u64);` makes
/// the type `Counts` (a [`TableSpec`]) and registers the table's name and types for the
/// settings check, `/tables` and the CLI.
#[macro_export]
macro_rules! register_table {
    ($(#[$meta:meta])* $vis:vis $spec:ident = $name:literal, $key:ty => $value:ty) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default)]
        $vis struct $spec;

        impl $crate::table::TableSpec for $spec {
            const NAME: &'static str = $name;
            type Key = $key;
            type Value = $value;
        }

        $crate::inventory::submit! {
            $crate::table::TableDecl::new(
                $name,
                file!(),
                stringify!($key),
                stringify!($value),
                $crate::table::decl::parse_key_as::<$key>,
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
