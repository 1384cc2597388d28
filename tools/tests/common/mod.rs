//! A real broker process (the `odradek` binary) on a free port with a temporary data
//! directory, killed when dropped.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_odradek");

pub struct Broker {
    child: Child,
    pub bootstrap: String,
    _dir: tempfile::TempDir,
}

/// Whether something listens at `addr`. A connect to a free ephemeral port on loopback can
/// succeed on its own: the kernel may pick that very port as the source, and the socket
/// connects to itself (TCP simultaneous open). Such a connection is not a listener.
pub fn listening(addr: &str) -> bool {
    TcpStream::connect(addr).is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

impl Broker {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let bootstrap = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("broker.log")).expect("log");
        let mut child = Command::new(BIN)
            .args(["serve", "--listeners", &bootstrap, "--shards", "1", "--data-dir"])
            .arg(dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start broker");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if listening(&bootstrap) {
                return Broker { child, bootstrap, _dir: dir };
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("broker did not listen on {bootstrap}");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Did it die before its test ended? Say so, with its log, when the test failed.
        let exited = self.child.try_wait().ok().flatten();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self._dir.path().join("broker.log")).unwrap_or_default();
            eprintln!("broker {} (exited on its own: {exited:?}) log:\n{log}", self.bootstrap);
        }
    }
}
