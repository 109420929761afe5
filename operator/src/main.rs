//! The `flowfed` binary: parses the command line and hands over to the library.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    flowfed::cli::Cli::parse().run()
}
