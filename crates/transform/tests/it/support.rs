//! A temporary project + lake, bronze tables written from SQL, and table contents as text.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
use tributary_lake::{Lake, TableWriter, WriteMode};
use tributary_transform::{ModelOutcome, ModelRunner, Models, RunOptions, TransformError};

pub struct Env {
    pub dir: tempfile::TempDir,
    pub lake: Lake,
    pub sources: BTreeSet<String>,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new("lake", dir.path(), &BTreeMap::new()).unwrap();
        Env {
            dir,
            lake,
            sources: BTreeSet::new(),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Write a file under the project.
    pub fn file(&self, rel: &str, text: &str) {
        let p: PathBuf = self.root().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Write the rows of `sql` to bronze table `name` (append or overwrite).
    pub async fn bronze(&mut self, name: &str, sql: &str, mode: WriteMode) {
        let ctx = deltalake::datafusion::prelude::SessionContext::new();
        let df = ctx.sql(sql).await.unwrap();
        let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.unwrap();
        let mut w = TableWriter::new(&self.lake, "bronze", name, schema, mode)
            .await
            .unwrap();
        for b in batches {
            w.write(b).await.unwrap();
        }
        w.commit(None, Default::default()).await.unwrap();
        self.sources.insert(format!("bronze.{name}"));
    }

    pub fn models(&self) -> Result<Models, Vec<tributary_core::config::ConfigProblem>> {
        Models::load(self.root(), self.sources.clone(), BTreeMap::new(), None)
    }

    pub async fn run(&self, id: &str) -> Result<ModelOutcome, TransformError> {
        self.run_with(id, false).await
    }

    pub async fn run_with(
        &self,
        id: &str,
        full_refresh: bool,
    ) -> Result<ModelOutcome, TransformError> {
        let models = self.models().unwrap_or_else(|p| panic!("models: {p:?}"));
        let mut opts = RunOptions::new("run-test");
        opts.full_refresh = full_refresh;
        opts.memory_limit_bytes = 512 * 1024 * 1024;
        let runner = ModelRunner::new(&self.lake, &models, opts);
        let model = models.get(id).unwrap_or_else(|| panic!("no model {id}"));
        runner.run_model(model).await
    }

    /// Rows of a query over the lake, each as `a|b|c`, sorted.
    pub async fn rows(&self, sql: &str) -> Vec<String> {
        let ctx = self.lake.session().await.unwrap();
        lines(&ctx.sql(sql).await.unwrap().collect().await.unwrap())
    }

    pub async fn version(&self, layer: &str, name: &str) -> Option<u64> {
        self.lake
            .open(layer, name)
            .await
            .unwrap()
            .and_then(|t| t.version())
    }
}

/// Rows as `a|b|c` (NULL as `NULL`), sorted.
pub fn lines(batches: &[deltalake::arrow::array::RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    let opts = FormatOptions::default().with_null("NULL");
    for b in batches {
        let fs: Vec<ArrayFormatter> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            out.push(
                fs.iter()
                    .map(|f| f.value(r).to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    out.sort();
    out
}
