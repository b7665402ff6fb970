//! `grok-video-worker healthcheck`: exit 0 when the worker's metrics endpoint answers, for
//! container health checks (the image has no curl).

use clap::Args;

/// Flags of `healthcheck`.
#[derive(Args, Debug)]
pub struct HealthcheckCmd {
    /// The worker's metrics address (0.0.0.0 is asked on 127.0.0.1).
    #[arg(long, env = "GROK_METRICS_ADDRESS", value_name = "HOST:PORT")]
    metrics_address: std::net::SocketAddr,
}

impl HealthcheckCmd {
    pub(super) async fn run(self) -> anyhow::Result<()> {
        let mut addr = self.metrics_address;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let response = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(3))
            .build()?
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("worker metrics at {addr} unreachable: {}", e.without_url())
            })?;
        anyhow::ensure!(
            response.status().is_success(),
            "worker metrics at {addr} answered {}",
            response.status()
        );
        Ok(())
    }
}
