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
