//! `gemba`: parse the command line, set up logging, run the command
//! ([`gemba::cli`]).

use clap::Parser;

/// mimalloc: the ingest path allocates many small strings per event, where
/// it is markedly faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = gemba::cli::Cli::parse();
    gemba::cli::init_tracing();
    gemba::cli::run(cli).await
}
