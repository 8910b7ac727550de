//! What the tests of the binary share: the binary, and a server process
//! that is killed if a test fails halfway.

use std::io::{BufRead, BufReader};
use std::process::Child;

/// The `switchboard` binary cargo built for these tests.
pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_switchboard");

/// A server process; killed when dropped.
pub(crate) struct Running(pub(crate) Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    /// The address from the one line the server prints on stdout (which
    /// must be piped): `listening on http://ADDR`.
    #[allow(dead_code, reason = "not every test binary reads it")]
    pub(crate) fn address(&mut self) -> String {
        let mut line = String::new();
        BufReader::new(self.0.stdout.take().expect("stdout is piped")).read_line(&mut line).expect("read stdout");
        line.trim().strip_prefix("listening on http://").expect("the listening line").to_owned()
    }
}
