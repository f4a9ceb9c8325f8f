//! A `redis-server` of the test's own on a free loopback port, stopped
//! when dropped. Shared by the integration tests and the benchmarks.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process on `127.0.0.1:<free port>`.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    /// For a durable server: its own directory, where its append-only
    /// file survives a kill and a restart.
    durable: Option<PathBuf>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

impl RedisServer {
    /// Starts a server and waits until it answers `PING`.
    pub fn start() -> Self {
        Self::try_start().expect(
            "redis-server did not start; is it installed? (the README's test command installs it)",
        )
    }

    /// Starts a server, or `None` when `redis-server` is not installed or
    /// does not come up.
    pub fn try_start() -> Option<Self> {
        Self::try_start_with(false)
    }

    /// Starts a server that writes every write to its append-only file
    /// before answering (`--appendonly yes --appendfsync always`), in a
    /// directory of its own: killed and restarted, it loses nothing it
    /// acknowledged.
    pub fn start_durable() -> Self {
        Self::try_start_with(true).expect("redis-server did not start")
    }

    fn try_start_with(durable: bool) -> Option<Self> {
        for _ in 0..5 {
            let port = free_port();
            let durable = durable.then(|| {
                let dir = std::env::temp_dir()
                    .join(format!("cache-runtime-redis-{}-{port}", std::process::id()));
                std::fs::create_dir_all(&dir).expect("create the server's directory");
                dir
            });
            let mut server = RedisServer {
                child: None,
                port,
                durable,
            };
            // Not up: most likely the port was taken meanwhile; try another.
            if server.spawn()? {
                return Some(server);
            }
        }
        None
    }

    /// Starts `redis-server` on this server's port: whether it came up, or
    /// `None` when it cannot be run at all (not installed).
    fn spawn(&mut self) -> Option<bool> {
        let (aof, dir) = match &self.durable {
            Some(dir) => (
                ["--appendonly", "yes", "--appendfsync", "always"],
                dir.clone(),
            ),
            None => (
                ["--appendonly", "no", "--appendfsync", "everysec"],
                std::env::temp_dir(),
            ),
        };
        let Ok(child) = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", ""])
            .args(aof)
            .args(["--dir", &dir.to_string_lossy()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        else {
            return None;
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self
                .connection()
                .is_some_and(|mut c| redis::cmd("PING").query::<String>(&mut c).is_ok())
            {
                return Some(true);
            }
            if let Some(child) = self.child.as_mut() {
                if child.try_wait().ok().flatten().is_some() {
                    // Exited: most likely the port was taken meanwhile.
                    self.child = None;
                    return Some(false);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        Some(false)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A plain connection for reading what the cache wrote.
    pub fn connection(&self) -> Option<redis::Connection> {
        redis::Client::open(self.url())
            .ok()?
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()
    }

    /// Runs one command on a plain connection.
    pub fn query<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> T {
        let mut c = self
            .connection()
            .expect("test redis-server is not answering");
        cmd.query(&mut c).expect("redis command failed")
    }

    /// Kills the server (SIGKILL) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port: empty, or for a durable
    /// server, with what its append-only file holds.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.spawn() != Some(true) {
            assert!(
                Instant::now() < deadline,
                "redis-server did not restart on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
            assert!(status.is_ok_and(|s| s.success()), "kill {signal} failed");
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes a frozen server.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.thaw();
        self.kill();
        if let Some(dir) = &self.durable {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
