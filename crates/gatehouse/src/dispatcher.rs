//! The outbox's dispatcher: sends the webhook deliveries the use cases wrote with their
//! changes (see `gatehouse_domain::NewEvent`), in every `gatehouse serve`.
//!
//! - Each turn (`UserService::dispatch_turn`) records the attempts finished since the
//!   last turn (what follows each: a retry after the next configured delay, with jitter;
//!   `failed` when they run out; 410 disables the endpoint), in one statement, and takes
//!   due deliveries and mails, up to [`TAKEN`] at once; it sends them as the Standard
//!   Webhooks specification says, [`IN_FLIGHT`] at a time, in the order they were taken.
//!   - PostgreSQL: one write claims each delivery for a lease of twice the timeout and
//!     5 s (`FOR UPDATE SKIP LOCKED`, so instances share the work and no attempt is made
//!     twice at once).
//!   - SQLite: the dispatcher holding the database's [`OutboxLock`] is its only one. It
//!     reads due deliveries, keeps those it is sending in memory, and writes only what it
//!     records: half the writes per delivery in SQLite's one writer, which every change
//!     waits for. A process that finds the lock held waits for it (the holder's poll picks
//!     up its events); a kill releases it, so a restarted process resends at once what
//!     was in flight. Mails keep their lease.
//! - When idle it wakes at once when a change of this instance raised an event, and
//!   otherwise polls every [`POLL`] (other instances' events, retries coming due). Under
//!   a steady load its turns are at least [`SPACING`] apart ([`SPACING_LOADED`] under a
//!   heavy one), so that one write carries many deliveries; with a backlog it turns
//!   whenever half of what it took has finished.
//! - [`Dispatcher::stop`] lets attempts in flight finish and record (each at most the
//!   receiver's timeout); an attempt cut short by a kill is not lost: its lease runs out
//!   and it is claimed again (SQLite: it is pending, and taken again by the next holder).
//! - Sending is background work: the dispatcher's thread (HTTP, signatures, mail, timers)
//!   runs below the request threads ([`SENDING_NICE`], Linux `SCHED_BATCH`), as the bcrypt
//!   lane does, so a change waiting for a core goes first. Its writes (a turn, the admin
//!   digest) run on a thread of their own at the request threads' priority: on SQLite a
//!   turn holds the one writer, and every change would wait while a lowered thread holding
//!   it waited for a core.
//! - Where a delivery may go is checked again at each attempt: the stored URL's literal
//!   address, and every address its name resolves to (a resolver that refuses non-public
//!   ones, so the connection goes only to an address that was checked).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_domain::{
    resolve_public, Attempt, AttemptNext, Claiming, DueDelivery, RetryPolicy, UserService,
    WebhookUrl,
};
use gatehouse_storage::OutboxLock;
use tokio::sync::{Notify, Semaphore};

use crate::mailer::Mailer;

/// How often the dispatcher looks for due deliveries when nothing woke it.
pub const POLL: Duration = Duration::from_secs(1);

/// How much longer than twice the receiver's timeout a claim lasts.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// Attempts (deliveries and mails) made at once, at most: what one receiver sees at once.
const IN_FLIGHT: usize = 16;

/// Deliveries and mails taken and not yet recorded, at most: those in flight and those
/// waiting for a slot. Taking more than [`IN_FLIGHT`] per turn means fewer turns under a
/// steady load, each a write in SQLite's one writer that every change waits for
/// (docs/performance.md, issue 18's sixth session). A taken attempt that could not start
/// within the timeout is not made (see [`Outcome::NotStarted`]), so the lease (twice the
/// timeout and a margin) still covers every attempt and its recording.
const TAKEN: usize = 64;

/// How far below the request threads the sending runs (nice 0 to 19, with `SCHED_BATCH`):
/// when both want a core, a change goes first; alone, sending gets every core it wants.
/// What it changed is in docs/performance.md (issue 18).
pub const SENDING_NICE: u8 = 10;

/// How the dispatcher sends.
#[derive(Debug, Clone)]
pub struct DispatchOptions {
    /// How long a receiver has to answer (`GATEHOUSE_WEBHOOK_TIMEOUT`).
    pub timeout: Duration,
    /// The waits between attempts (`GATEHOUSE_WEBHOOK_RETRY_DELAYS`).
    pub retry: RetryPolicy,
    /// Whether non-public addresses are allowed (`GATEHOUSE_WEBHOOK_ALLOW_PRIVATE`).
    pub allow_private: bool,
    /// How often to look for due deliveries without a wake-up.
    pub poll: Duration,
    /// Where attempts are counted by outcome (`gatehouse_webhook_deliveries_total`,
    /// `gatehouse_mails_total`).
    pub counter: Option<gatehouse_http::DeliveryCounter>,
    /// The mailer, when one is configured: queued mails are sent, and the admin digest is
    /// queued when due.
    pub mailer: Option<Mailer>,
    /// SQLite: the [`OutboxLock`]'s file. The dispatcher holding it is the database's only
    /// one and takes deliveries without a lease; without it, the dispatcher waits for it
    /// (another process sends). `None` (PostgreSQL): deliveries are claimed with a lease.
    pub sole_lock: Option<PathBuf>,
}

/// The running dispatcher.
pub struct Dispatcher {
    wake: Arc<Notify>,
    stopping: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    writes: Option<std::thread::JoinHandle<()>>,
}

impl Dispatcher {
    /// The wake-up to hand to `UserService::with_outbox_wake` before the dispatcher starts.
    #[must_use]
    pub fn wake_signal() -> Arc<Notify> {
        Arc::new(Notify::new())
    }

    /// Starts the dispatcher on a thread of its own, sending what `users` claims.
    ///
    /// # Errors
    /// When the thread, its runtime or the HTTP client cannot be made.
    pub fn start(
        users: UserService,
        wake: Arc<Notify>,
        options: DispatchOptions,
    ) -> anyhow::Result<Self> {
        let stopping = Arc::new(AtomicBool::new(false));
        let client = client(&options)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // Started from this thread, so at its priority; the sending thread lowers its own
        // (and its runtime's blocking threads, which it starts, inherit it).
        let (writes, writes_thread) = Writes::start()?;
        let thread = std::thread::Builder::new()
            .name("gatehouse-outbox".into())
            .spawn({
                let wake = Arc::clone(&wake);
                let stopping = Arc::clone(&stopping);
                move || {
                    gatehouse_http::lower_this_threads_priority(SENDING_NICE);
                    runtime.block_on(run(users, client, wake, stopping, options, writes));
                }
            })?;
        Ok(Self {
            wake,
            stopping,
            thread: Some(thread),
            writes: Some(writes_thread),
        })
    }

    /// Stops claiming, lets the attempts in flight finish and be recorded, and returns.
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the outbox dispatcher panicked");
            }
        }
        // The sending thread is gone, and with it the last sender of writes: the writes
        // thread has finished its last job and ends.
        if let Some(thread) = self.writes.take() {
            if thread.join().is_err() {
                tracing::error!("the outbox's writes thread panicked");
            }
        }
    }
}

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The dispatcher's writes, one at a time on a thread at the request threads' priority
/// (see the module's docs).
#[derive(Clone)]
struct Writes(std::sync::mpsc::Sender<Job>);

impl Writes {
    fn start() -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("outbox-writes".into())
            .spawn(move || {
                while let Ok(job) = queue.recv() {
                    // A panic (a bug) fails that job (its caller is told), not the thread.
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                        tracing::error!("a write of the outbox panicked");
                    }
                }
            })?;
        Ok((Self(jobs), thread))
    }

    /// Runs `work` on the writes thread; `None` when it panicked (or the thread is gone).
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = answer.send(work());
        });
        self.0.send(job).ok()?;
        answered.await.ok()
    }
}

/// The HTTP client: the receiver's timeout for the whole exchange, no redirects (a
/// redirect could lead anywhere), no proxy from the environment (it would bypass the
/// address check), and a resolver that refuses non-public addresses.
fn client(options: &DispatchOptions) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(options.timeout)
        .connect_timeout(options.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("Gatehouse-Webhooks/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(CheckedResolver {
            allow_private: options.allow_private,
        }))
        .build()?)
}

/// Resolves with the system's resolver, then refuses a name with any non-public address
/// (unless allowed): the connection can only go to an address checked here.
struct CheckedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved =
                tokio::task::spawn_blocking(move || resolve_public(&host, 0, allow_private))
                    .await
                    .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?;
            let addresses: Vec<SocketAddr> =
                resolved.map_err(|refused| -> Box<dyn std::error::Error + Send + Sync> {
                    refused.into()
                })?;
            let addresses: reqwest::dns::Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

/// What a finished attempt leaves to record.
enum Outcome {
    Delivery(i64, Attempt),
    Mail(i64, Attempt),
    /// Taken but never attempted: it waited for a slot longer than the timeout (receivers
    /// slower than the turns), or the dispatcher is stopping. Nothing is recorded: a
    /// delivery of the sole dispatcher is taken again at the next turn; a leased one (and
    /// a mail) when its lease runs out.
    NotStarted(Option<i64>),
}

/// How this dispatcher takes deliveries.
enum Role {
    /// With a lease on each (PostgreSQL; or SQLite when the lock could not be used).
    Leased,
    /// The database's only dispatcher (SQLite, holding the lock): due deliveries are
    /// read; `taken` holds those being sent or not yet recorded, each until its lease
    /// would have run out (an attempt whose recording failed is then made again).
    Sole {
        _lock: OutboxLock,
        taken: HashMap<i64, Instant>,
    },
    /// Another process holds the lock: nothing is taken until it is gone.
    Standby(PathBuf),
}

impl Role {
    /// The role `sole_lock` allows now.
    fn take(sole_lock: Option<&PathBuf>) -> Self {
        let Some(path) = sole_lock else {
            return Self::Leased;
        };
        match OutboxLock::try_take(path) {
            Ok(Some(lock)) => Self::Sole {
                _lock: lock,
                taken: HashMap::new(),
            },
            Ok(None) => Self::Standby(path.clone()),
            Err(e) => {
                // Claims with a lease stay right whatever else runs on the file, unless
                // another process holds the lock and sends without them; that process
                // could open the file and this one cannot, which the warning points at.
                tracing::warn!(
                    error = %e,
                    lock = %path.display(),
                    "cannot use the outbox's lock file: deliveries are claimed with a lease"
                );
                Self::Leased
            }
        }
    }
}

async fn run(
    users: UserService,
    client: reqwest::Client,
    wake: Arc<Notify>,
    stopping: Arc<AtomicBool>,
    options: DispatchOptions,
    writes: Writes,
) {
    let options = Arc::new(options);
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tasks: tokio::task::JoinSet<Outcome> = tokio::task::JoinSet::new();
    let mut finished = Vec::new();
    let mut last_digest_check = Instant::now()
        .checked_sub(options.poll)
        .unwrap_or_else(Instant::now);
    let mut slow_until = Instant::now();
    let mut role = Role::take(options.sole_lock.as_ref());
    if let Role::Standby(path) = &role {
        tracing::info!(
            lock = %path.display(),
            "another process sends this database's outbox; this one takes over when it stops"
        );
    }
    while !stopping.load(Ordering::SeqCst) {
        if let Role::Standby(path) = &role {
            let path = path.clone();
            role = Role::take(Some(&path));
            if let Role::Standby(_) = role {
                // Nothing is in flight: wait for the poll (or the stop's wake-up).
                tokio::select! {
                    () = wake.notified() => {}
                    () = tokio::time::sleep(options.poll) => {}
                }
                continue;
            }
            tracing::info!("this process now sends the database's outbox");
        }
        while let Some(done) = tasks.try_join_next() {
            finished.extend(done.ok());
        }
        if options.mailer.is_some() && last_digest_check.elapsed() >= options.poll {
            last_digest_check = Instant::now();
            queue_digest(&users, &writes).await;
        }
        // The attempts finished meanwhile are recorded, and the next taken: up to
        // [`TAKEN`], or only as many as can start now for a timeout after some could not
        // start in time (receivers slower than the events), so that taking them does not
        // keep leasing deliveries only to let them go.
        if finished
            .iter()
            .any(|outcome| matches!(outcome, Outcome::NotStarted(_)))
        {
            slow_until = Instant::now() + options.timeout;
        }
        let most = if Instant::now() < slow_until {
            IN_FLIGHT
        } else {
            TAKEN
        };
        let free = most.saturating_sub(tasks.len()) as u64;
        let recorded = finished.len();
        let turned_at = Instant::now();
        let (claimed, mails) = turn(
            &users,
            &writes,
            std::mem::take(&mut finished),
            free,
            &options,
            &mut role,
        )
        .await;
        let claimed_count = (claimed.len() + mails.len()) as u64;
        // Each waits for a slot (first taken, first sent) and starts only if it can still
        // finish within its lease.
        let taken_at = Instant::now();
        for mail in mails {
            let slot = Slot::new(&in_flight, &stopping, taken_at, options.timeout);
            let options = Arc::clone(&options);
            tasks.spawn(async move {
                let Some(_permit) = slot.wait().await else {
                    return Outcome::NotStarted(None);
                };
                send_mail(&options, mail).await
            });
        }
        for delivery in claimed {
            let slot = Slot::new(&in_flight, &stopping, taken_at, options.timeout);
            let client = client.clone();
            let options = Arc::clone(&options);
            tasks.spawn(async move {
                let Some(_permit) = slot.wait().await else {
                    return Outcome::NotStarted(Some(delivery.id));
                };
                attempt(&client, &options, delivery).await
            });
        }
        let pace = if free > 0 && claimed_count == free {
            Pace::Backlog
        } else if recorded == 0 && claimed_count == 0 && tasks.is_empty() {
            Pace::Idle
        } else if recorded + claimed_count as usize >= LOADED {
            Pace::Busy {
                spacing: SPACING_LOADED,
            }
        } else {
            Pace::Busy { spacing: SPACING }
        };
        next_turn(
            pace,
            turned_at,
            &mut tasks,
            &mut finished,
            &wake,
            &stopping,
            options.poll,
        )
        .await;
    }
    // Stopping: the attempts in flight finish (each bounded by the timeout) and are
    // recorded; those waiting for a slot do not start; nothing more is taken.
    while let Some(done) = tasks.join_next().await {
        finished.extend(done.ok());
    }
    turn(&users, &writes, finished, 0, &options, &mut role).await;
}

/// A taken attempt's wait for one of the [`IN_FLIGHT`] slots.
struct Slot {
    slots: Arc<Semaphore>,
    stopping: Arc<AtomicBool>,
    /// When it must have started: it was taken (and its lease begun) a timeout before.
    start_by: Instant,
}

impl Slot {
    fn new(
        slots: &Arc<Semaphore>,
        stopping: &Arc<AtomicBool>,
        taken_at: Instant,
        timeout: Duration,
    ) -> Self {
        Self {
            slots: Arc::clone(slots),
            stopping: Arc::clone(stopping),
            start_by: taken_at + timeout,
        }
    }

    /// The slot, or `None` when the attempt must not start: too late for its lease, or
    /// the dispatcher is stopping.
    async fn wait(self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let permit = self.slots.acquire_owned().await.ok()?;
        if Instant::now() > self.start_by || self.stopping.load(Ordering::SeqCst) {
            return None;
        }
        Some(permit)
    }
}

/// How the last turn left the dispatcher, which decides when the next one comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pace {
    /// Nothing recorded, claimed or in flight: the next turn comes at once when a change
    /// wakes the dispatcher (commit to delivery is then a millisecond or two), or at the
    /// poll.
    Idle,
    /// Some work, no backlog: the next turn waits for something to do (an attempt finished,
    /// a wake-up, the poll) and comes no sooner than the spacing after the last, so that
    /// under a steady stream of changes one write records and claims many deliveries
    /// instead of one each, and leaves the database to the changes themselves. The
    /// spacing is [`SPACING`], or [`SPACING_LOADED`] after a turn that handled (recorded
    /// and took) [`LOADED`] or more.
    Busy { spacing: Duration },
    /// The last turn claimed all it could take: more is due. The next turn comes as soon as
    /// half of what was taken has finished (at most [`TAKEN`] / 2 attempts).
    Backlog,
}

/// Under a steady load, turns (one write transaction each) are at least this far apart:
/// what a delivery may wait before it is taken when it follows another closely (an idle
/// dispatcher turns at once when woken).
const SPACING: Duration = Duration::from_millis(10);

/// Under a heavy load, turns are at least this far apart: fewer and larger writes in
/// SQLite's one writer, which the changes wait for (docs/performance.md, issue 18's sixth
/// session). A delivery may then wait this long before it is taken.
const SPACING_LOADED: Duration = Duration::from_millis(50);

/// A turn that recorded and took this many attempts or more says the load is heavy: the
/// next comes [`SPACING_LOADED`] after it. (A turn records about as many as it takes: at
/// [`SPACING`] that is some 400 events a second or more; the heavy spacing then lasts
/// while some 80 a second or more come.)
const LOADED: usize = 8;

/// Waits until the next turn is due, as `pace` says; attempts that finish meanwhile are
/// gathered into `finished`. A stop ends an idle or busy wait at once (the caller then
/// drains what is in flight); a backlog's wait is for attempts that finish within the
/// timeout anyway.
async fn next_turn(
    pace: Pace,
    turned_at: Instant,
    tasks: &mut tokio::task::JoinSet<Outcome>,
    finished: &mut Vec<Outcome>,
    wake: &Notify,
    stopping: &AtomicBool,
    poll: Duration,
) {
    match pace {
        Pace::Idle => {
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
        Pace::Busy { spacing } => {
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    finished.extend(done.ok());
                }
            }
            if !stopping.load(Ordering::SeqCst) {
                tokio::time::sleep_until((turned_at + spacing).into()).await;
            }
        }
        Pace::Backlog => {
            let half = tasks.len().min(TAKEN / 2);
            let deadline = tokio::time::sleep(poll);
            tokio::pin!(deadline);
            while finished.len() < half && !stopping.load(Ordering::SeqCst) {
                tokio::select! {
                    Some(done) = tasks.join_next() => finished.extend(done.ok()),
                    () = &mut deadline => break,
                }
            }
        }
    }
}

/// Records `finished` and takes up to `limit` due deliveries and mails, as `role` says
/// (`UserService::dispatch_turn`). On a store failure (logged) nothing is recorded or
/// taken: the finished attempts' claims run out and they are made again (a receiver may
/// see one twice; the `webhook-id` lets it tell).
async fn turn(
    users: &UserService,
    writes: &Writes,
    finished: Vec<Outcome>,
    limit: u64,
    options: &DispatchOptions,
    role: &mut Role,
) -> (Vec<DueDelivery>, Vec<gatehouse_domain::DueMail>) {
    if finished.is_empty() && limit == 0 {
        return (Vec::new(), Vec::new());
    }
    let (mut deliveries, mut mails) = (Vec::new(), Vec::new());
    let mut not_started = Vec::new();
    for outcome in finished {
        match outcome {
            Outcome::Delivery(id, attempt) => deliveries.push((id, attempt)),
            Outcome::Mail(id, attempt) => mails.push((id, attempt)),
            Outcome::NotStarted(id) => not_started.extend(id),
        }
    }
    if !not_started.is_empty() {
        tracing::debug!(
            deliveries = not_started.len(),
            "taken deliveries not started in time: taken again later"
        );
    }
    let recorded: Vec<i64> = deliveries.iter().map(|(id, _)| *id).collect();
    let users = users.clone();
    let count = deliveries.len() + mails.len();
    let delivery_lease = lease(options);
    // An SMTP exchange is some ten round trips, each bounded by the timeout.
    let mail_lease = delivery_lease * 5;
    let with_mails = options.mailer.is_some();
    let sole = match role {
        Role::Sole { taken, .. } => {
            let now = Instant::now();
            taken.retain(|id, until| *until > now && !not_started.contains(id));
            // The ones this very turn records are read before they are recorded: left out
            // whatever their age (turns slowed by the database may outlast a lease).
            let mut in_flight: Vec<i64> = taken.keys().copied().collect();
            in_flight.extend(recorded.iter().filter(|id| !taken.contains_key(id)));
            Some(in_flight)
        }
        Role::Leased | Role::Standby(_) => None,
    };
    let turned = writes
        .run(move || {
            let claiming = match &sole {
                Some(in_flight) => Claiming::Sole { in_flight },
                None => Claiming::Leased,
            };
            users.dispatch_turn(
                &deliveries,
                &mails,
                gatehouse_domain::now(),
                delivery_lease,
                mail_lease,
                limit,
                with_mails,
                claiming,
            )
        })
        .await;
    match turned {
        Some(Ok((claimed, mails))) => {
            if let Role::Sole { taken, .. } = role {
                for id in &recorded {
                    taken.remove(id);
                }
                let until = Instant::now() + options.timeout * 2 + LEASE_MARGIN;
                taken.extend(claimed.iter().map(|delivery| (delivery.id, until)));
            }
            (claimed, mails)
        }
        Some(Err(e)) => {
            tracing::warn!(error = %e, recorded = count, "the outbox's turn (record and claim) failed");
            (Vec::new(), Vec::new())
        }
        None => {
            tracing::error!("the outbox's turn panicked");
            (Vec::new(), Vec::new())
        }
    }
}

/// The lease of a claim: it outlasts an attempt (the timeout) and its recording with a
/// margin.
fn lease(options: &DispatchOptions) -> chrono::Duration {
    chrono::Duration::from_std(options.timeout * 2 + LEASE_MARGIN)
        .unwrap_or_else(|_| chrono::Duration::minutes(10))
}

/// Queues the admin digest if it is due (failures are logged).
async fn queue_digest(users: &UserService, writes: &Writes) {
    let users = users.clone();
    match writes
        .run(move || users.queue_admin_digest(gatehouse_domain::now()))
        .await
    {
        Some(Ok(0)) => {}
        Some(Ok(n)) => tracing::info!(mails = n, "queued the admin digest"),
        Some(Err(e)) => tracing::warn!(error = %e, "queueing the admin digest failed"),
        None => tracing::error!("queueing the admin digest panicked"),
    }
}

/// Sends one mail; what to record.
async fn send_mail(options: &DispatchOptions, mail: gatehouse_domain::DueMail) -> Outcome {
    let sent = match options.mailer.clone() {
        Some(mailer) => {
            let (to, subject, body) = (mail.to.clone(), mail.subject.clone(), mail.body.clone());
            tokio::task::spawn_blocking(move || mailer.send(&to, &subject, &body))
                .await
                .unwrap_or_else(|e| Err((None, format!("sending panicked: {e}"))))
        }
        None => Err((None, "no mailer is configured".to_owned())),
    };
    let at = gatehouse_domain::now();
    let attempts = mail.attempts + 1;
    let (status_code, error, next) = match sent {
        Ok(code) => (Some(code), None, AttemptNext::Delivered),
        // 5xx: the server refused for good (no such mailbox); 4xx and no answer: retry.
        Err((Some(code), error)) if (500..600).contains(&code) => {
            (Some(code), Some(error), AttemptNext::Failed)
        }
        Err((code, error)) => (
            code,
            Some(error),
            options.retry.after_failure(attempts, at, jitter()),
        ),
    };
    if let Some(counter) = &options.counter {
        counter.count_mail(match next {
            AttemptNext::Delivered => "sent",
            AttemptNext::RetryAt(_) => "retrying",
            AttemptNext::Failed | AttemptNext::Gone => "failed",
        });
    }
    if let Some(error) = &error {
        tracing::info!(mail = mail.id, kind = mail.kind.as_str(), attempts, error = %error, "mail not sent");
    }
    Outcome::Mail(
        mail.id,
        Attempt {
            at,
            status_code,
            error,
            next,
        },
    )
}

/// Sends one delivery; what to record.
async fn attempt(
    client: &reqwest::Client,
    options: &DispatchOptions,
    delivery: DueDelivery,
) -> Outcome {
    let sent = send(client, options, &delivery).await;
    let at = gatehouse_domain::now();
    let attempts = delivery.attempts + 1;
    let (status_code, error, next) = match sent {
        Ok(status) if (200..300).contains(&status) => (Some(status), None, AttemptNext::Delivered),
        Ok(410) => (
            Some(410),
            Some("the receiver answered 410 Gone: the endpoint was disabled".to_owned()),
            AttemptNext::Gone,
        ),
        Ok(status) => (
            Some(status),
            Some(format!("the receiver answered {status}")),
            options.retry.after_failure(attempts, at, jitter()),
        ),
        Err(error) => (
            None,
            Some(error),
            options.retry.after_failure(attempts, at, jitter()),
        ),
    };
    if let Some(counter) = &options.counter {
        counter.count(match next {
            AttemptNext::Delivered => "delivered",
            AttemptNext::RetryAt(_) => "retrying",
            AttemptNext::Failed => "failed",
            AttemptNext::Gone => "gone",
        });
    }
    match next {
        AttemptNext::Delivered => tracing::debug!(delivery = delivery.id, "webhook delivered"),
        _ => tracing::info!(
            delivery = delivery.id,
            webhook = delivery.webhook_id,
            attempts,
            error = error.as_deref().unwrap_or(""),
            "webhook delivery failed"
        ),
    }
    Outcome::Delivery(
        delivery.id,
        Attempt {
            at,
            status_code,
            error,
            next,
        },
    )
}

/// Posts the event; the receiver's status, or why no answer came.
async fn send(
    client: &reqwest::Client,
    options: &DispatchOptions,
    delivery: &DueDelivery,
) -> Result<u16, String> {
    // Checked again: the address may have been allowed when the endpoint was added (a
    // setting since changed), and a literal address never reaches the resolver.
    let url = WebhookUrl::parse(&delivery.url, options.allow_private)?;
    let timestamp = chrono::Utc::now().timestamp();
    let body = delivery.payload.as_bytes().to_vec();
    let signature = delivery.secret.sign(&delivery.event_id, timestamp, &body);
    let response = client
        .post(url.as_str())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &delivery.event_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let status = response.status().as_u16();
    drain(response).await;
    Ok(status)
}

/// How much of an answer's body is read (and dropped) so that its connection can carry the
/// next delivery.
const DRAINED: usize = 64 * 1024;

/// Reads a short answer's body to its end, so that the connection goes back to the pool
/// (one left unread may close it, and the next delivery pays for a new connection, TLS
/// included). A longer one, or one that fails, is dropped with its connection. The
/// client's timeout bounds the whole exchange, the body included; the status is what
/// counts either way.
async fn drain(mut response: reqwest::Response) {
    let mut read = 0;
    while let Ok(Some(chunk)) = response.chunk().await {
        read += chunk.len();
        if read > DRAINED {
            return;
        }
    }
}

/// A transport error in words, with its causes (the resolver's refusal among them).
fn describe(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = if error.is_timeout() {
        "no answer within the timeout".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text.chars().take(500).collect()
}

/// A factor in [0.8, 1.2): spreads retries of many deliveries that failed together.
fn jitter() -> f64 {
    let mut byte = [0u8; 1];
    match getrandom::fill(&mut byte) {
        Ok(()) => 0.8 + 0.4 * f64::from(byte[0]) / 256.0,
        Err(_) => 1.0,
    }
}
