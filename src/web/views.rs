//! Web views: pages and APIs an app adds to the worker's web server, as Faust's
//! `@app.page`. A view is a function that builds a warp filter from a `ViewContext`;
//! `register_view!` binds it to a name, and `web.views` in the settings chooses which run.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use warp::filters::BoxedFilter;

use crate::settings::Settings;
use crate::table::{GlobalTable, GlobalWindowedTable, TableError, TableSpec};
use crate::worker::WorkerState;

/// What a view is built from.
#[derive(Clone)]
pub struct ViewContext {
    pub(crate) shared: Arc<WorkerState>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl ViewContext {
    pub fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    /// A path from the settings, relative to the settings file.
    pub fn path(&self, p: &str) -> PathBuf {
        self.shared.settings.resolve_path(std::path::Path::new(p))
    }

    /// A global table of the settings (views read, never write).
    pub fn global_table<T: TableSpec>(&self) -> Result<GlobalTable<T::Key, T::Value>, TableError> {
        let rt = self
            .shared
            .tables
            .get(T::NAME)
            .ok_or_else(|| TableError::Unknown(T::NAME.to_string()))?
            .clone();
        GlobalTable::bind(rt)
    }

    /// The global mirror of a windowed table (`mirrors = "<windowed table>"`).
    pub fn global_windowed_table<T: TableSpec>(
        &self,
    ) -> Result<GlobalWindowedTable<T::Key, T::Value>, TableError> {
        let rt = self
            .shared
            .tables
            .get(T::NAME)
            .ok_or_else(|| TableError::Unknown(T::NAME.to_string()))?
            .clone();
        GlobalWindowedTable::bind(rt)
    }

    /// Turns true when the worker stops (long-lived responses end then).
    pub fn shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }
}

pub type ViewFilter = BoxedFilter<(warp::reply::Response,)>;
pub type ViewBuilder = fn(&ViewContext) -> anyhow::Result<ViewFilter>;

/// A view linked into the binary.
pub struct ViewDecl {
    pub name: &'static str,
    pub build: ViewBuilder,
}

inventory::collect!(ViewDecl);

/// Binds a view builder to a name: `register_view!("status", status_view);`
#[macro_export]
macro_rules! register_view {
    ($name:literal, $build:path) => {
        $crate::inventory::submit! {
            $crate::web::views::ViewDecl { name: $name, build: $build }
        }
    };
}

/// The names of the views linked into the binary.
pub fn known() -> Vec<&'static str> {
    let mut v: Vec<_> = inventory::iter::<ViewDecl>
        .into_iter()
        .map(|d| d.name)
        .collect();
    v.sort_unstable();
    v
}

/// Builds the views the settings name, in their order.
pub fn build(ctx: &ViewContext) -> anyhow::Result<Vec<ViewFilter>> {
    let mut out = Vec::new();
    for name in &ctx.settings().web.views {
        let decl = inventory::iter::<ViewDecl>
            .into_iter()
            .find(|d| d.name == name)
            .ok_or_else(|| anyhow::anyhow!("no view named {name} is linked in"))?;
        out.push((decl.build)(ctx).map_err(|e| anyhow::anyhow!("view {name}: {e:#}"))?);
    }
    Ok(out)
}
