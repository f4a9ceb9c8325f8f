//! A worker process of the cross-process tests: started with piped stdin
//! and stdout, its stdout read line by line on a thread of its own, and
//! killed (SIGKILL) when dropped.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct ChildProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    name: &'static str,
}

impl ChildProcess {
    /// Starts `command`, called `name` in failure messages.
    pub fn spawn(command: &mut Command, name: &'static str) -> ChildProcess {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ChildProcess {
            stdin: child.stdin.take(),
            child,
            lines,
            name,
        }
    }

    /// Writes one line to its stdin.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").unwrap_or_else(|e| panic!("write to {}: {e}", self.name));
    }

    /// The rest of its next line, which must start with `prefix`; waits
    /// at most 60 s.
    pub fn expect(&self, prefix: &str) -> String {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!("{} said nothing for 60 s (expected `{prefix}`)", self.name)
            });
        line.strip_prefix(prefix)
            .unwrap_or_else(|| panic!("expected `{prefix}...` from {}, got `{line}`", self.name))
            .to_owned()
    }

    /// The numbers of its next line, after `prefix`.
    pub fn expect_numbers(&self, prefix: &str) -> Vec<u64> {
        self.expect(prefix)
            .split_whitespace()
            .map(|n| n.parse().expect("a number"))
            .collect()
    }

    /// Closes its stdin, which tells a worker to finish.
    pub fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// Waits for it to exit.
    pub fn wait(&mut self) {
        let _ = self.child.wait();
    }

    /// Kills it with SIGKILL and waits for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
