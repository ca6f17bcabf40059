//! A process a test started (a control plane, a proxy), killed and reaped when the test ends,
//! however it ends.

use std::process::Child;

/// A child process, killed and waited for on drop.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
