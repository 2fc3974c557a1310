//! The workspace's binaries for tests that run them as processes.
//!
//! `cargo test -p pingji-tests` does not build other packages' binaries, so
//! under cargo (`CARGO` is set) a binary is built first with `cargo build -p
//! PACKAGE --bin NAME` into this test's target directory (a no-op when
//! fresh); the file is then `target/<profile>/NAME`, next to `deps/`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio::process::Command;

/// Finds `binary` of `package`, building it first when run under cargo.
pub async fn workspace_binary(package: &str, binary: &str) -> anyhow::Result<PathBuf> {
    let test_exe = std::env::current_exe().context("cannot find the test executable")?;
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = test_exe
        .parent()
        .and_then(Path::parent)
        .with_context(|| format!("unexpected test executable path {}", test_exe.display()))?
        .to_path_buf();
    let path = profile_dir.join(format!("{binary}{}", std::env::consts::EXE_SUFFIX));
    if let Some(cargo) = std::env::var_os("CARGO") {
        let target_dir = profile_dir.parent().context("the profile directory has no parent")?;
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "-p", package, "--bin", binary, "--target-dir"]).arg(target_dir);
        if profile_dir.file_name().is_some_and(|name| name == "release") {
            build.arg("--release");
        }
        build.current_dir(env!("CARGO_MANIFEST_DIR"));
        let status = build.status().await.context("cannot run cargo build")?;
        anyhow::ensure!(status.success(), "cargo build -p {package} --bin {binary} failed: {status}");
    }
    anyhow::ensure!(path.is_file(), "the {binary} binary is missing at {}; run cargo build -p {package}", path.display());
    Ok(path)
}
