//! Container images for tests on a node, built as `make image` builds them
//! (`scripts/image.sh`, `scripts/oci_archive.py`): nothing is pulled.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context as _, bail};

use crate::{repo_root, tool};

/// An OCI image archive and the name it carries.
#[derive(Clone, Debug)]
pub struct Image {
    /// The reference Pods use, e.g. `flowfed/flowfed:0.1.0`.
    pub name: String,
    pub archive: PathBuf,
    /// The manifest digest, `sha256:...`.
    pub digest: String,
}

fn image_script(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(repo_root().join("scripts/image.sh"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .context("running scripts/image.sh")?;
    if !out.status.success() {
        bail!(
            "scripts/image.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8(out.stdout)?;
    stdout
        .lines()
        .last()
        .filter(|line| line.starts_with("sha256:"))
        .map(str::to_owned)
        .with_context(|| format!("scripts/image.sh printed no digest last: {stdout}"))
}

/// The operator's image, as `make image` builds it: once per test process,
/// and one build at a time (tests of one binary run in parallel).
pub fn operator_image() -> anyhow::Result<Image> {
    static BUILT: Mutex<Option<Image>> = Mutex::new(None);
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(image) = built.as_ref() {
        return Ok(image.clone());
    }
    let image = build_operator_image()?;
    *built = Some(image.clone());
    Ok(image)
}

/// Runs `make image`'s script now (the binary is rebuilt only if stale).
pub fn build_operator_image() -> anyhow::Result<Image> {
    let digest = image_script(&[])?;
    let chart = std::fs::read_to_string(repo_root().join("charts/flowfed/Chart.yaml"))?;
    let app_version = chart
        .lines()
        .find_map(|l| l.strip_prefix("appVersion:"))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .context("Chart.yaml has an appVersion")?;
    Ok(Image {
        name: format!("flowfed/flowfed:{app_version}"),
        archive: repo_root().join("target/image/flowfed.oci.tar"),
        digest,
    })
}

/// The stand-in city gateways (`flowfed-gateways`) as an image, for Pods.
pub fn gateways_image() -> anyhow::Result<Image> {
    let archive = repo_root().join("target/image/gateways.oci.tar");
    let name = "flowfed/gateways:dev";
    let digest = image_script(&[
        "flowfed-gateways",
        name,
        archive.to_str().context("UTF-8 path")?,
    ])?;
    Ok(Image {
        name: name.into(),
        archive,
        digest,
    })
}

/// The cached `kubectl` (static) as an image: a plain Pod that talks to the
/// API server with in-cluster configuration.
pub fn kubectl_image() -> anyhow::Result<Image> {
    let kubectl = tool("kubectl")?;
    let archive = repo_root().join("target/image/kubectl.oci.tar");
    std::fs::create_dir_all(archive.parent().expect("a parent"))?;
    let name = "flowfed-tests/kubectl:dev";
    let out = Command::new(repo_root().join("scripts/oci_archive.py"))
        .args(["--name", name, "--out"])
        .arg(&archive)
        .arg("--file")
        .arg(format!("{}:kubectl:0755", kubectl.display()))
        .args(["--entrypoint", "/kubectl", "--user", "65532:65532"])
        .output()?;
    if !out.status.success() {
        bail!("oci_archive.py: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(Image {
        name: name.into(),
        archive,
        digest: String::from_utf8(out.stdout)?.trim().to_owned(),
    })
}
