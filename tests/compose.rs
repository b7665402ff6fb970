//! docker-compose.yml agrees with the code, checked without a container engine: the services
//! exist, every setting given to the worker is one it reads (from the CLI definition) with a
//! value it accepts, required settings are wired, the worker points at the temporal and minio
//! services, the ports are published, and the bucket and credentials match across services.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    time::Duration,
};

use clap::{CommandFactory, Parser};
use grok_video_worker::cli::Cli;
use serde_norway::Value;

/// Settings the worker reads that are not its own flags: read by the Temporal, AWS and
/// tracing libraries (see README, Configuration).
const STANDARD_SETTINGS: &[&str] = &[
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "AWS_REQUEST_CHECKSUM_CALCULATION",
    "RUST_LOG",
    "GROK_LOG_FORMAT",
];

const SERVICES: &[&str] = &[
    "postgresql",
    "temporal",
    "temporal-ui",
    "minio",
    "create-bucket",
    "worker",
];

fn compose() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml");
    let text = std::fs::read_to_string(path).expect("read docker-compose.yml");
    serde_norway::from_str(&text).expect("docker-compose.yml is YAML")
}

fn service<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["services"]
        .get(name)
        .unwrap_or_else(|| panic!("docker-compose.yml has no service {name:?}"))
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        other => panic!("expected a scalar, got {other:?}"),
    }
}

/// A service's `environment` as written (map or `KEY=VALUE` list), before interpolation.
fn environment(service: &Value) -> BTreeMap<String, String> {
    match service.get("environment") {
        None => BTreeMap::new(),
        Some(Value::Mapping(m)) => m.iter().map(|(k, v)| (scalar(k), scalar(v))).collect(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|item| {
                let item = scalar(item);
                let (k, v) = item.split_once('=').unwrap_or((&item, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        Some(other) => panic!("environment is neither a map nor a list: {other:?}"),
    }
}

/// Variable substitution: compose's (`$$` is a literal `$` left for the container's shell)
/// or, with `compose` false, the shell's. `${V}`, `$V`, `${V:-default}`, `${V-default}`,
/// `${V:?message}` and `${V?message}` (an error when unset).
fn expand(text: &str, vars: &HashMap<&str, &str>, compose: bool) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('$') if compose => {
                chars.next();
                out.push('$');
            }
            Some('{') => {
                chars.next();
                let mut inner = String::new();
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                    inner.push(c);
                }
                let name_end = inner
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(inner.len());
                let (name, modifier) = inner.split_at(name_end);
                let value = vars.get(name).copied();
                let set_nonempty = value.is_some_and(|v| !v.is_empty());
                let resolved = if let Some(default) = modifier.strip_prefix(":-") {
                    if set_nonempty {
                        value.unwrap()
                    } else {
                        default
                    }
                    .to_owned()
                } else if let Some(default) = modifier.strip_prefix('-') {
                    value.unwrap_or(default).to_owned()
                } else if let Some(message) = modifier.strip_prefix(":?") {
                    if !set_nonempty {
                        return Err(format!("{name}: {message}"));
                    }
                    value.unwrap().to_owned()
                } else if let Some(message) = modifier.strip_prefix('?') {
                    value
                        .ok_or_else(|| format!("{name}: {message}"))?
                        .to_owned()
                } else if modifier.is_empty() {
                    value.unwrap_or_default().to_owned()
                } else {
                    panic!("unsupported substitution ${{{inner}}}");
                };
                out.push_str(&resolved);
            }
            Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
                let mut name = String::new();
                while let Some(c) = chars.peek().copied() {
                    if !(c.is_ascii_alphanumeric() || c == '_') {
                        break;
                    }
                    name.push(c);
                    chars.next();
                }
                out.push_str(vars.get(name.as_str()).copied().unwrap_or_default());
            }
            _ => out.push('$'),
        }
    }
    Ok(out)
}

/// A service's environment as the container gets it, with `vars` as the host's environment
/// (or .env file).
fn resolved_environment(service: &Value, vars: &HashMap<&str, &str>) -> BTreeMap<String, String> {
    environment(service)
        .into_iter()
        .map(|(k, v)| {
            let value = expand(&v, vars, true).unwrap_or_else(|e| panic!("{k}: {e}"));
            (k, value)
        })
        .collect()
}

/// `(published, target)` container ports, short or long syntax.
fn ports(service: &Value) -> Vec<(Option<u16>, u16)> {
    let Some(Value::Sequence(ports)) = service.get("ports") else {
        return Vec::new();
    };
    ports
        .iter()
        .map(|p| match p {
            Value::Mapping(m) => (
                m.get("published").map(|v| scalar(v).parse().unwrap()),
                scalar(&m["target"]).parse().unwrap(),
            ),
            other => {
                let spec = scalar(other);
                let spec = spec.split('/').next().unwrap();
                let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
                let target = parts[0].parse().unwrap_or_else(|_| panic!("port {spec:?}"));
                (parts.get(1).map(|p| p.parse().unwrap()), target)
            }
        })
        .collect()
}

/// A command or entrypoint (string or list) as one string.
fn command_text(v: &Value) -> String {
    match v {
        Value::Sequence(items) => items.iter().map(scalar).collect::<Vec<_>>().join(" "),
        other => scalar(other),
    }
}

fn vars<'a>(pairs: &[(&'a str, &'a str)]) -> HashMap<&'a str, &'a str> {
    pairs.iter().copied().collect()
}

/// What a deployment must set: the API key (compose refuses to start without it).
fn deployment_vars<'a>(extra: &[(&'a str, &'a str)]) -> HashMap<&'a str, &'a str> {
    let mut v = vars(&[("GROK_API_KEY", "sk-compose-test")]);
    v.extend(extra.iter().copied());
    v
}

/// The worker subcommand as clap builds it (global flags propagated), and its settings by
/// environment variable.
fn worker_command() -> clap::Command {
    let mut cli = Cli::command();
    cli.build();
    cli.find_subcommand("worker")
        .expect("the CLI has a worker subcommand")
        .clone()
}

fn worker_settings(worker: &clap::Command) -> BTreeMap<String, clap::Arg> {
    let top = Cli::command();
    top.get_arguments()
        .chain(worker.get_arguments())
        .filter_map(|a| Some((a.get_env()?.to_string_lossy().into_owned(), a.clone())))
        .collect()
}

/// `host:port` of an address or URL.
fn host_port(address: &str) -> (String, u16) {
    let url = if address.contains("://") {
        url::Url::parse(address).unwrap_or_else(|e| panic!("{address:?}: {e}"))
    } else {
        url::Url::parse(&format!("tcp://{address}")).unwrap_or_else(|e| panic!("{address:?}: {e}"))
    };
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url
        .port_or_known_default()
        .unwrap_or_else(|| panic!("{address:?} names no port"));
    (host, port)
}

fn assert_points_at(doc: &Value, what: &str, address: &str, target: &str, port: u16) {
    let (host, p) = host_port(address);
    assert_eq!(
        host, target,
        "{what}={address} should name the {target} service"
    );
    assert_eq!(p, port, "{what}={address}: {target} listens on {port}");
    assert!(
        ports(service(doc, target)).iter().any(|(_, t)| *t == port)
            || service(doc, target).get("expose").is_some(),
        "{target} does not declare port {port}"
    );
}

#[test]
fn compose_has_the_services() {
    let doc = compose();
    for name in SERVICES {
        service(&doc, name);
    }
    let worker = service(&doc, "worker");
    assert!(
        worker.get("build").is_some(),
        "the worker is built from this repository"
    );
    let depends: BTreeSet<String> = match worker.get("depends_on") {
        Some(Value::Mapping(m)) => m.keys().map(scalar).collect(),
        Some(Value::Sequence(s)) => s.iter().map(scalar).collect(),
        _ => BTreeSet::new(),
    };
    for needed in ["temporal", "create-bucket"] {
        assert!(
            depends.contains(needed),
            "worker should depend on {needed}: {depends:?}"
        );
    }
    // Every dependency is a service of the file.
    for svc in doc["services"].as_mapping().unwrap().values() {
        if let Some(Value::Mapping(m)) = svc.get("depends_on") {
            for dep in m.keys() {
                service(&doc, &scalar(dep));
            }
        }
    }
}

#[test]
fn compose_worker_environment_is_read_by_the_worker() {
    let doc = compose();
    let worker_cmd = worker_command();
    let settings = worker_settings(&worker_cmd);
    for required in ["GROK_API_KEY", "GROK_S3_BUCKET", "GROK_TASK_QUEUE"] {
        assert!(
            settings.contains_key(required),
            "the CLI no longer reads {required}: {:?}",
            settings.keys()
        );
    }
    let env = environment(service(&doc, "worker"));
    let unknown: Vec<&String> = env
        .keys()
        .filter(|k| !settings.contains_key(*k) && !STANDARD_SETTINGS.contains(&k.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "docker-compose.yml gives the worker settings it does not read: {unknown:?} \
         (known: {:?} and {STANDARD_SETTINGS:?})",
        settings.keys()
    );
    // Each value, as compose resolves it, is one the worker's flag accepts: the same values
    // as flags parse into the CLI.
    let resolved = resolved_environment(service(&doc, "worker"), &deployment_vars(&[]));
    let mut argv = vec!["grok-video-worker".to_owned(), "worker".to_owned()];
    for (key, value) in &resolved {
        if let Some(arg) = settings.get(key) {
            let long = arg
                .get_long()
                .unwrap_or_else(|| panic!("{key} has no flag"));
            argv.push(format!("--{long}={value}"));
        }
    }
    if let Err(e) = Cli::try_parse_from(&argv) {
        panic!("the worker refuses the compose file's settings {argv:?}:\n{e}");
    }
}

#[test]
fn compose_wires_the_required_settings() {
    let doc = compose();
    let worker = service(&doc, "worker");
    let env = environment(worker);
    let key = env
        .get("GROK_API_KEY")
        .expect("the worker gets GROK_API_KEY");
    assert!(
        key.starts_with("${GROK_API_KEY:?") || key.starts_with("${GROK_API_KEY?"),
        "GROK_API_KEY should come from the deployment's environment and be required \
         (${{GROK_API_KEY:?...}}), not be written in the file: {key:?}"
    );
    assert!(
        expand(key, &vars(&[]), true).is_err(),
        "compose refuses to start without GROK_API_KEY"
    );
    let resolved = resolved_environment(worker, &deployment_vars(&[]));
    assert_eq!(resolved["GROK_API_KEY"], "sk-compose-test");
    // The S3 client fails fast without a region; MinIO needs credentials.
    for needed in [
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "GROK_S3_BUCKET",
    ] {
        assert!(
            resolved.get(needed).is_some_and(|v| !v.is_empty()),
            "the worker needs {needed}: {resolved:?}"
        );
    }
}

#[test]
fn compose_publishes_the_ports() {
    let doc = compose();
    for (name, port) in [("temporal", 7233), ("temporal-ui", 8080), ("minio", 9000)] {
        let published = ports(service(&doc, name));
        assert!(
            published.contains(&(Some(port), port)),
            "{name} should publish {port}:{port}, has {published:?}"
        );
    }
}

#[test]
fn compose_worker_points_at_temporal_and_minio() {
    let doc = compose();
    let env = resolved_environment(service(&doc, "worker"), &deployment_vars(&[]));
    assert_points_at(
        &doc,
        "worker TEMPORAL_ADDRESS",
        &env["TEMPORAL_ADDRESS"],
        "temporal",
        7233,
    );
    let ui = resolved_environment(service(&doc, "temporal-ui"), &vars(&[]));
    assert_points_at(
        &doc,
        "temporal-ui TEMPORAL_ADDRESS",
        &ui["TEMPORAL_ADDRESS"],
        "temporal",
        7233,
    );
    let endpoint = env
        .get("GROK_S3_ENDPOINT_URL")
        .or(env.get("AWS_ENDPOINT_URL"))
        .expect("the worker gets an S3 endpoint (AWS_ENDPOINT_URL)");
    assert_points_at(&doc, "worker S3 endpoint", endpoint, "minio", 9000);
    assert_eq!(
        env.get("GROK_S3_FORCE_PATH_STYLE").map(String::as_str),
        Some("true"),
        "MinIO without a domain needs path-style addressing"
    );
    assert_eq!(
        env["GROK_TASK_QUEUE"],
        grok_video_workflows::DEFAULT_TASK_QUEUE,
        "pipelines start workflows on the documented queue"
    );
}

/// What create-bucket runs, after compose's substitution (`host`) and then its shell's (with
/// the container's own environment).
struct BucketJob {
    alias_url: String,
    user: String,
    password: String,
    bucket: String,
}

fn bucket_job(doc: &Value, host: &HashMap<&str, &str>) -> BucketJob {
    let job = service(doc, "create-bucket");
    let script = job
        .get("entrypoint")
        .or(job.get("command"))
        .map(command_text)
        .expect("create-bucket has an entrypoint");
    let script = expand(&script, host, true).unwrap();
    let container_env = resolved_environment(job, host);
    let container_vars: HashMap<&str, &str> = container_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let script = expand(&script, &container_vars, false).unwrap();
    let words: Vec<String> = script
        .replace(['"', '\''], " ")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let at = |seq: &[&str]| {
        words
            .windows(seq.len())
            .position(|w| w.iter().zip(seq).all(|(a, b)| a == b))
            .map(|i| i + seq.len())
            .unwrap_or_else(|| panic!("create-bucket does not run `{}`: {script}", seq.join(" ")))
    };
    let alias = at(&["mc", "alias", "set"]);
    let (alias_name, alias_url) = (&words[alias], &words[alias + 1]);
    let (user, password) = (&words[alias + 2], &words[alias + 3]);
    let mb = at(&["mc", "mb"]);
    let target = words[mb..]
        .iter()
        .take_while(|w| *w != "&&" && *w != ";")
        .find(|w| !w.starts_with('-'))
        .expect("mc mb names a bucket");
    let bucket = target
        .strip_prefix(&format!("{alias_name}/"))
        .unwrap_or_else(|| panic!("mc mb {target}: not on alias {alias_name}"));
    BucketJob {
        alias_url: alias_url.clone(),
        user: user.clone(),
        password: password.clone(),
        bucket: bucket.to_owned(),
    }
}

#[test]
fn compose_bucket_job_makes_the_worker_bucket_with_the_minio_credentials() {
    let doc = compose();
    // The defaults, and a deployment that sets its own bucket and MinIO credentials.
    for host in [
        deployment_vars(&[]),
        deployment_vars(&[
            ("GROK_S3_BUCKET", "archive-bucket"),
            ("MINIO_ROOT_USER", "operator"),
            ("MINIO_ROOT_PASSWORD", "s3cret-pass"),
        ]),
    ] {
        let job = bucket_job(&doc, &host);
        let worker = resolved_environment(service(&doc, "worker"), &host);
        let minio = resolved_environment(service(&doc, "minio"), &host);
        assert_points_at(
            &doc,
            "create-bucket's mc alias",
            &job.alias_url,
            "minio",
            9000,
        );
        assert_eq!(
            job.bucket, worker["GROK_S3_BUCKET"],
            "create-bucket makes the worker's bucket ({host:?})"
        );
        assert_eq!(
            job.user, minio["MINIO_ROOT_USER"],
            "mc logs in as MinIO's user ({host:?})"
        );
        assert_eq!(job.password, minio["MINIO_ROOT_PASSWORD"], "({host:?})");
        assert_eq!(
            worker["AWS_ACCESS_KEY_ID"], minio["MINIO_ROOT_USER"],
            "({host:?})"
        );
        assert_eq!(
            worker["AWS_SECRET_ACCESS_KEY"], minio["MINIO_ROOT_PASSWORD"],
            "({host:?})"
        );
    }
}

#[test]
fn compose_stop_grace_period_covers_the_worker_shutdown_grace() {
    let doc = compose();
    let worker_cmd = worker_command();
    let settings = worker_settings(&worker_cmd);
    let arg = &settings["GROK_SHUTDOWN_GRACE_SECONDS"];
    let env = resolved_environment(service(&doc, "worker"), &deployment_vars(&[]));
    let grace: u64 = env
        .get("GROK_SHUTDOWN_GRACE_SECONDS")
        .cloned()
        .or_else(|| {
            arg.get_default_values()
                .first()
                .map(|v| v.to_string_lossy().into_owned())
        })
        .expect("a shutdown grace")
        .parse()
        .unwrap();
    // Docker's default is 10 s.
    let stop = service(&doc, "worker")
        .get("stop_grace_period")
        .map(|v| humantime::parse_duration(&scalar(v)).expect("a duration"))
        .unwrap_or(Duration::from_secs(10));
    assert!(
        stop > Duration::from_secs(grace),
        "docker kills the worker after stop_grace_period {stop:?}, before its {grace} s \
         shutdown grace is over"
    );
}

#[test]
fn compose_expand_follows_compose_rules() {
    let v = vars(&[("A", "x"), ("E", "")]);
    assert_eq!(
        expand("${A:-d}/${B:-d}/${E:-d}/${E-d}", &v, true).unwrap(),
        "x/d/d/"
    );
    assert_eq!(expand("$$A $${B:-m} $A", &v, true).unwrap(), "$A ${B:-m} x");
    assert_eq!(expand("${B:-m}", &v, false).unwrap(), "m");
    assert!(expand("${B:?need B}", &v, true).is_err());
    assert!(expand("${E:?need E}", &v, true).is_err());
    assert_eq!(expand("${E?need E}", &v, true).unwrap(), "");
}
