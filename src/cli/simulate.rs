//! `grok-video-worker simulate`.

use std::{path::PathBuf, time::Duration};

use clap::Args;
use tokio::net::TcpListener;

use crate::simulator::{self, SimulatorConfig};

/// Flags of `simulate`.
#[derive(Args, Debug)]
pub struct SimulateCmd {
    /// Address to listen on (loopback; port 0 picks a free one).
    #[arg(long, env = "GROK_SIM_LISTEN", default_value = "127.0.0.1:0")]
    listen: String,
    /// The API key clients must send.
    #[arg(long, env = "GROK_API_KEY", hide_env_values = true)]
    api_key: String,
    /// Directory of MP4 files to serve.
    #[arg(long, env = "GROK_SIM_VIDEOS_DIR", default_value = "tests/fixtures")]
    videos_dir: PathBuf,
    /// Seconds a new task stays queued.
    #[arg(long, env = "GROK_SIM_QUEUED_SECONDS", default_value_t = 5.0)]
    queued_seconds: f64,
    /// Seconds a task then stays processing.
    #[arg(long, env = "GROK_SIM_PROCESSING_SECONDS", default_value_t = 20.0)]
    processing_seconds: f64,
    /// Base URL written into video_url (default: the listening address).
    #[arg(long, env = "GROK_SIM_PUBLIC_URL")]
    public_url: Option<String>,
}

impl SimulateCmd {
    pub(super) async fn run(self) -> anyhow::Result<()> {
        if !self.videos_dir.is_dir() {
            anyhow::bail!(
                "invalid setting --videos-dir / GROK_SIM_VIDEOS_DIR: {} is not a directory",
                self.videos_dir.display()
            );
        }
        let listener = TcpListener::bind(&self.listen).await.map_err(|e| {
            anyhow::anyhow!(
                "invalid setting --listen / GROK_SIM_LISTEN: cannot bind {}: {e}",
                self.listen
            )
        })?;
        let addr = listener.local_addr()?;
        // The one line scripts read to find the simulator.
        println!("simulator listening on http://{addr}");
        let config = SimulatorConfig {
            api_key: self.api_key,
            videos_dir: self.videos_dir,
            queued_for: Duration::from_secs_f64(self.queued_seconds.max(0.0)),
            processing_for: Duration::from_secs_f64(self.processing_seconds.max(0.0)),
            public_url: self.public_url,
        };
        simulator::serve(config, listener, super::shutdown_signal()).await?;
        Ok(())
    }
}
