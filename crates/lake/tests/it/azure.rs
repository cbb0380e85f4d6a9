//! The lake on Azure storage (ADLS Gen2 / Blob) through the Azurite emulator on loopback.

use std::collections::BTreeMap;
use std::process::Command;

use tributary_lake::{Lake, WriteMode, table_info};

use crate::support::*;

/// A new container on Azurite, or `None` (skip) outside CI when Azurite or the Python SDK is
/// missing.
fn azurite_container() -> Option<String> {
    if std::net::TcpStream::connect("127.0.0.1:10000").is_err() {
        return unavailable(
            "Azurite",
            "nothing listens on 127.0.0.1:10000 (.ci/run starts it)",
        );
    }
    let name = unique_name("lakeit").replace('_', "-");
    let script = format!(
        "from azure.storage.blob import BlobServiceClient\nBlobServiceClient.from_connection_string('UseDevelopmentStorage=true').create_container('{name}')\n"
    );
    match Command::new("python3").args(["-c", &script]).output() {
        Ok(o) if o.status.success() => Some(name),
        Ok(o) => unavailable(
            "python azure-storage-blob",
            String::from_utf8_lossy(&o.stderr),
        ),
        Err(e) => unavailable("python3", e),
    }
}

#[tokio::test]
async fn commits_to_azure_storage_and_reads_back() {
    let Some(container) = azurite_container() else {
        return;
    };
    let options = BTreeMap::from([("azure_storage_use_emulator".to_string(), "true".to_string())]);
    let root = tempfile::tempdir().unwrap();
    let url = format!("az://{container}/acme");
    let lake = Lake::new(&url, root.path(), &options).unwrap();
    lake.check().await.unwrap();
    for (i, (from, to)) in [(1, 501), (501, 601)].into_iter().enumerate() {
        let summary = written(
            &lake,
            "events",
            WriteMode::Append,
            vec![rows(from, to, "x")],
        )
        .await
        .commit(Some(watermark(to - 1)), run_metadata(&format!("run-{i}")))
        .await
        .unwrap();
        assert_eq!(summary.version, i as u64);
    }
    let t = lake.open("bronze", "events").await.unwrap().unwrap();
    let info = table_info("bronze", "events", &t).unwrap();
    assert_eq!((info.version, info.rows), (1, Some(600)));
    assert_eq!(info.watermark, Some(watermark(600)));
    assert_eq!(
        lake.table_names().await.unwrap(),
        [("bronze".to_string(), "events".to_string())]
    );
    // Nothing went to a local folder.
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);

    let Some(out) = python(&format!(
        r#"
from deltalake import DeltaTable
dt = DeltaTable("{url}/bronze/events", storage_options={{"azure_storage_use_emulator": "true"}})
print(dt.version(), dt.to_pyarrow_table().num_rows)
"#
    )) else {
        return;
    };
    assert_eq!(out.trim(), "1 600", "{out}");
}
