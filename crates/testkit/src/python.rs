//! Running Python snippets in tests: the independent readers and writers (`deltalake`,
//! `polars`, `openpyxl`) that check our output.

use std::process::Command;

/// Run `script` with python3 and return its stdout, after checking that `modules` (e.g.
/// `"deltalake, polars"`) import; `None` (skip) when they do not, outside CI
/// ([`crate::unavailable`]). Panics with the script's output when it fails.
pub fn run(modules: &str, script: &str) -> Option<String> {
    match Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
    {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return crate::unavailable(
                &format!("python {modules}"),
                String::from_utf8_lossy(&o.stderr),
            );
        }
        Err(e) => return crate::unavailable("python3", e),
    }
    // Ends with `os._exit` once the script has run: deltalake's native threads can abort the
    // interpreter's normal shutdown ("terminate called without an active exception") after
    // the script printed its results. An exception in the script still exits non-zero.
    let script = format!("{script}\nimport os, sys\nsys.stdout.flush()\nos._exit(0)\n");
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap_or_else(|e| panic!("running python3: {e}"));
    assert!(
        out.status.success(),
        "python failed:\n{script}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}
