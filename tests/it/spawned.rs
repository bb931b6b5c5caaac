//! Servers the tests run as processes of their own: gateways (`assetgw
//! serve`, to kill, restart and race) and private Redis servers (to stop
//! mid-run).

use std::time::Duration;

use assetgw::{core::proto::RegistryKind, ops::config::RegistryConfig, ops::pki::Role};

use crate::harness::{Courts, free_port, gateway_tls, registry_channel, scratch, test_pki, tls_of};

/// A gateway running as its own process (`assetgw serve`).
pub struct Process {
    pub url: String,
    pub config: std::path::PathBuf,
    child: std::process::Child,
}

impl Process {
    /// Starts `assetgw serve` over `registries` and the ledger at `ledger_url`, and waits until it serves.
    pub async fn serve(registries: &[RegistryConfig], ledger_url: &str) -> Process {
        Self::serve_with(registries, ledger_url, "").await
    }

    /// [`Process::serve`] with more configuration (TOML tables) appended.
    pub async fn serve_with(registries: &[RegistryConfig], ledger_url: &str, extra: &str) -> Process {
        let port = free_port().await;
        let tls = gateway_tls();
        let mut toml = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[ledger]\nurl = \"{ledger_url}\"\n[tls]\nca = {:?}\ncert = {:?}\nkey = {:?}\n\
             [audit]\nkey_file = {:?}\n",
            tls.ca,
            tls.cert,
            tls.key,
            test_pki().join("audit.key")
        );
        // Tests are bursts, unless `extra` sets its own limits.
        if !extra.contains("[limits]") {
            toml += "[limits]\nrate = 100000\nburst = 100000\n";
        }
        for r in registries {
            toml += &format!(
                "[[registries]]\nname = \"{}\"\nkind = \"{}\"\nendpoint = \"{}\"\n",
                r.name,
                r.kind.short_name(),
                r.endpoint
            );
        }
        toml += extra;
        let config = scratch().join("gateway.toml");
        std::fs::write(&config, toml).unwrap();
        let url = format!("https://127.0.0.1:{port}");
        let p = Process::spawn(&["serve", "--config", &config.display().to_string()], url, config.clone());
        p.wait_until_healthy(p.channel()).await;
        p
    }

    /// Starts `assetgw mock-registry` as registry `name` on `port`, and waits until it serves.
    pub async fn mock_registry(name: &str, kind: RegistryKind, port: u16) -> Process {
        tls_of(Role::Registry(name.into()));
        let listen = format!("127.0.0.1:{port}");
        let args = ["mock-registry", "--name", name, "--kind", kind.short_name(), "--listen", &listen, "--pki"];
        let pki = test_pki().to_str().unwrap();
        let url = format!("https://{listen}");
        let p = Process::spawn(&[&args[..], &[pki]].concat(), url.clone(), std::path::PathBuf::new());
        p.wait_until_healthy(registry_channel(&url, name)).await;
        p
    }

    fn spawn(args: &[&str], url: String, config: std::path::PathBuf) -> Process {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_assetgw"))
            .args(args)
            .env("RUST_LOG", "warn")
            .env_remove("ASSETGW_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Process { url, config, child }
    }

    async fn wait_until_healthy<C>(&self, channel: C)
    where
        C: tonic::client::GrpcService<tonic::body::Body>,
        C::Error: Into<tonic::codegen::StdError>,
        C::ResponseBody: tonic::codegen::Body<Data = bytes::Bytes> + Send + 'static,
        <C::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
    {
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        for _ in 0..400 {
            if health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("assetgw {} did not start", self.url);
    }

    /// The process id, e.g. to read its memory use.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn channel(&self) -> Courts {
        Courts::new(&self.url)
    }

    /// SIGTERM, and waits for the graceful exit.
    pub fn terminate(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis server of the test's own, on a free port, keeping nothing on disk;
/// stopped when dropped. `None` outside CI when `redis-server` is not installed.
pub struct Redis {
    pub url: String,
    child: std::process::Child,
}

impl Redis {
    pub async fn start() -> Option<Redis> {
        let port = free_port().await;
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("redis-server is required in CI: {e}"),
            Err(e) => {
                eprintln!("skipped: redis-server cannot be started ({e})");
                return None;
            }
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Some(Redis { url: format!("redis://127.0.0.1:{port}"), child });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server did not start on port {port}");
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing answers, as a hung Redis.
    pub fn pause(&self) {
        let _ = std::process::Command::new("kill").args(["-STOP", &self.child.id().to_string()]).status();
    }

    /// Stops the server now (as an outage would).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
