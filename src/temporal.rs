//! Connecting to Temporal: the SDK's envconfig (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
//! temporal.toml profiles) with the command line's overrides on top.

use std::time::Duration;

use temporalio_client::{
    Client, ClientOptions, Connection, envconfig::LoadClientConfigProfileOptions,
};
use url::Url;

use crate::config::TemporalArgs;

/// Why Temporal could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum TemporalError {
    /// envconfig rejected its inputs.
    #[error("Temporal configuration (TEMPORAL_* / temporal.toml): {0}")]
    Config(String),
    /// The address flag is not usable.
    #[error(
        "invalid setting --temporal-address / TEMPORAL_ADDRESS: {0:?} is not host:port or a URL"
    )]
    Address(String),
    /// The search attributes could not be listed or registered.
    #[error(
        "cannot register search attributes GrokTaskId, GrokModel, GrokProviderStatus (Keyword) in namespace {namespace}: {reason}; \
         register them with `temporal operator search-attribute create`, or start the worker with GROK_REGISTER_SEARCH_ATTRIBUTES=false once they exist"
    )]
    SearchAttributes {
        /// The namespace.
        namespace: String,
        /// The server's message.
        reason: String,
    },
    /// The server did not answer.
    #[error(
        "cannot connect to Temporal at {target} (set --temporal-address / TEMPORAL_ADDRESS or a temporal.toml profile): {reason}"
    )]
    Connect {
        /// Where we tried.
        target: String,
        /// The client's error.
        reason: String,
    },
}

/// Connects a client. With `retry_for`, keeps retrying a server that does not answer yet
/// for that long, logging each failure, instead of giving up at once.
pub async fn connect(
    args: &TemporalArgs,
    retry_for: Option<Duration>,
) -> Result<Client, TemporalError> {
    let (mut conn, mut client_opts) =
        ClientOptions::load_from_config(LoadClientConfigProfileOptions::default())
            .map_err(|e| TemporalError::Config(e.to_string()))?;
    if let Some(address) = &args.address {
        conn.target = parse_address(address)?;
    }
    if let Some(namespace) = &args.namespace {
        client_opts.namespace = namespace.clone();
    }
    client_opts.data_converter = crate::payloads::data_converter();
    conn.connect_timeout = Some(Duration::from_secs(10));
    let target = conn.target.to_string();
    let started = std::time::Instant::now();
    let mut wait = Duration::from_millis(500);
    loop {
        match Connection::connect(conn.clone()).await {
            Ok(connection) => {
                return Client::new(connection, client_opts).map_err(|e| TemporalError::Connect {
                    target,
                    reason: e.to_string(),
                });
            }
            Err(e) => {
                let reason = e.to_string();
                match retry_for {
                    Some(limit) if started.elapsed() < limit => {
                        tracing::warn!(%target, error = %reason, retry_in = ?wait,
                            "Temporal not reachable yet (--temporal-address / TEMPORAL_ADDRESS); retrying");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(10));
                    }
                    _ => return Err(TemporalError::Connect { target, reason }),
                }
            }
        }
    }
}

fn parse_address(address: &str) -> Result<Url, TemporalError> {
    let candidate = if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    };
    match Url::parse(&candidate) {
        Ok(url) if url.host().is_some() => Ok(url),
        _ => Err(TemporalError::Address(address.to_owned())),
    }
}

/// Registers the workflows' search attributes (see `grok_video_workflows::search`) in the
/// client's namespace when they are missing. Workflows upsert them, and an upsert of an
/// unregistered attribute would fail every workflow task.
pub async fn ensure_search_attributes(client: &Client) -> Result<(), TemporalError> {
    use temporalio_client::{NamespacedClient, tonic};
    use temporalio_common::protos::temporal::api::{
        enums::v1::IndexedValueType,
        operatorservice::v1::{AddSearchAttributesRequest, ListSearchAttributesRequest},
    };

    let namespace = client.namespace().to_owned();
    let hint = |e: tonic::Status| TemporalError::SearchAttributes {
        namespace: namespace.clone(),
        reason: e.message().to_owned(),
    };
    let mut operator = client.connection().operator_service();
    let existing = operator
        .list_search_attributes(tonic::Request::new(ListSearchAttributesRequest {
            namespace: namespace.clone(),
        }))
        .await
        .map_err(hint)?
        .into_inner();
    let missing: std::collections::HashMap<String, i32> = grok_video_workflows::search::ALL
        .iter()
        .filter(|(name, _)| {
            !existing.custom_attributes.contains_key(*name)
                && !existing.system_attributes.contains_key(*name)
        })
        .map(|(name, _)| ((*name).to_owned(), IndexedValueType::Keyword as i32))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    tracing::info!(attributes = ?missing.keys().collect::<Vec<_>>(), %namespace, "registering search attributes");
    operator
        .add_search_attributes(tonic::Request::new(AddSearchAttributesRequest {
            search_attributes: missing,
            namespace: namespace.clone(),
        }))
        .await
        .map_err(hint)?;
    Ok(())
}
