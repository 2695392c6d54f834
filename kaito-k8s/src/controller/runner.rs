//! `kaito controller`: configuration and the process that runs the controllers.

use crate::error::{Error, Result};

/// Options of `kaito controller` (flatten into a clap command with `#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
pub struct ControllerOptions {
    /// Address of the metrics and health endpoints (`/metrics`, `/healthz`, `/readyz`).
    #[arg(long, env = "KAITO_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,
}

/// Runs the controllers until a shutdown signal.
pub async fn run_controller(_opts: ControllerOptions) -> Result<()> {
    Err(Error::Config("not implemented yet".into()))
}
