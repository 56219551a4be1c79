//! The injected shutdown, as rathole does it: one trigger, any number of
//! cheap listeners passed down the task tree; every task ends when it fires.
//!
//! The one way handoff stops its long-running tasks: the daemon's task tree,
//! the relay client (in the daemon, `handoff relay` and a command's one-off
//! link) and the cloud's relay server all listen on a [`Shutdown`]. It has
//! no dependencies inside the crate, so the site side and the cloud share it
//! without importing each other.

use tokio::sync::watch;

/// Fires the shutdown. Dropping it fires it too, so a task tree cannot
/// outlive whoever started it.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// Resolves once the shutdown fired. Clone one per task.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

/// A trigger and its first listener.
pub fn shutdown_channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    pub fn fire(&self) {
        self.0.send_replace(true);
    }

    /// Another listener.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Drop for ShutdownTrigger {
    fn drop(&mut self) {
        self.fire();
    }
}

impl Shutdown {
    /// Waits for the shutdown; at once if it already fired. Cancel-safe.
    pub async fn wait(&mut self) {
        // An error means the trigger is gone, which is a shutdown as well.
        let _ = self.0.wait_for(|fired| *fired).await;
    }

    pub fn fired(&self) -> bool {
        *self.0.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_listener_sees_the_shutdown_even_one_made_after_it() {
        let (trigger, mut a) = shutdown_channel();
        let mut b = a.clone();
        assert!(!a.fired());
        trigger.fire();
        a.wait().await;
        b.wait().await;
        let mut late = trigger.subscribe();
        late.wait().await;
        assert!(late.fired());
    }

    #[tokio::test]
    async fn dropping_the_trigger_is_a_shutdown() {
        let (trigger, mut a) = shutdown_channel();
        drop(trigger);
        a.wait().await;
    }
}
