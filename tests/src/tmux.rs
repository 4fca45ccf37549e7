//! A real terminal for tests: a private tmux server (its own socket) running one command
//! in a window of a fixed size; keys go in with send-keys, the screen comes out with
//! capture-pane. Waits poll the screen for a text instead of sleeping.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux server with one session; killed on drop.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `command` (run by `sh -c`) in a `width` x `height` window, with `env` set.
    pub fn start(
        command: &str,
        width: u16,
        height: u16,
        env: &[(&str, &Path)],
    ) -> anyhow::Result<Self> {
        let socket = format!("mes-test-{}-{}", std::process::id(), rand::random::<u32>());
        let t = Self { socket };
        let mut c = t.tmux();
        c.args(["-f", "/dev/null", "new-session", "-d", "-s", "t", "-x"])
            .arg(width.to_string())
            .arg("-y")
            .arg(height.to_string());
        for (k, v) in env {
            c.arg("-e").arg(format!("{k}={}", v.display()));
        }
        // Keep the pane after the command exits, to read its last screen.
        c.arg(format!("{command}; echo '[exited]'; sleep 600"));
        let out = c.output()?;
        anyhow::ensure!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(t)
    }

    fn tmux(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }

    /// Sends keys in tmux's notation ("Enter", "C-c", "q", "Down").
    pub fn keys(&self, keys: &[&str]) -> anyhow::Result<()> {
        let out = self
            .tmux()
            .args(["send-keys", "-t", "t"])
            .args(keys)
            .output()?;
        anyhow::ensure!(out.status.success(), "tmux send-keys {keys:?}");
        Ok(())
    }

    /// Types text literally.
    pub fn type_text(&self, text: &str) -> anyhow::Result<()> {
        let out = self
            .tmux()
            .args(["send-keys", "-t", "t", "-l", text])
            .output()?;
        anyhow::ensure!(out.status.success(), "tmux send-keys -l {text:?}");
        Ok(())
    }

    /// The screen as text.
    pub fn screen(&self) -> anyhow::Result<String> {
        let out = self
            .tmux()
            .args(["capture-pane", "-p", "-t", "t"])
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Waits until the screen shows every one of `texts`; the last screen on timeout.
    pub fn wait_for(&self, texts: &[&str], timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen()?;
            if texts.iter().all(|t| screen.contains(t)) {
                return Ok(screen);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the screen never showed {texts:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the screen shows none of `texts` (an overlay closed); the last screen
    /// on timeout. A key sent while an overlay still shows would go to it.
    pub fn wait_gone(&self, texts: &[&str], timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen()?;
            if !texts.iter().any(|t| screen.contains(t)) {
                return Ok(screen);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the screen still shows one of {texts:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux().arg("kill-server").output();
    }
}
