//! Command-line interface: `flowfed run` starts the controllers, `flowfed crdgen`
//! writes the CRDs the types define.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::api;

/// flowfed: keeps a national network of data flow nodes interconnected and its
/// catalog visible in every region that may see it.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write the CustomResourceDefinitions as YAML, one file per kind.
    Crdgen {
        /// Directory to write into (created if missing); `-` prints every CRD to stdout.
        #[arg(long, default_value = "crds")]
        out: PathBuf,
    },
}

impl Cli {
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Crdgen { out } => crdgen(&out),
        }
    }
}

/// Renders every CRD as YAML, keyed by its file name.
pub fn render_crds() -> anyhow::Result<Vec<(&'static str, String)>> {
    api::crds()
        .into_iter()
        .map(|(file, crd)| Ok((file, serde_yaml::to_string(&crd)?)))
        .collect()
}

fn crdgen(out: &std::path::Path) -> anyhow::Result<()> {
    let rendered = render_crds()?;
    if out.as_os_str() == "-" {
        for (_, yaml) in rendered {
            print!("---\n{yaml}");
        }
        return Ok(());
    }
    std::fs::create_dir_all(out)?;
    for (file, yaml) in rendered {
        std::fs::write(out.join(file), yaml)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CRDs in crds/ are generated; this fails when they drift from the types.
    #[test]
    fn checked_in_crds_match_the_types() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
        for (file, yaml) in render_crds().unwrap() {
            let on_disk = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
            assert!(
                on_disk == yaml,
                "crds/{file} is out of date: run `make crds` and commit the result"
            );
        }
        let files = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(
            files,
            render_crds().unwrap().len(),
            "crds/ holds files no type generates"
        );
    }
}
