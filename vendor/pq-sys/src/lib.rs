#[cfg(any(feature = "bundled", feature = "bundled_without_openssl"))]
extern crate pq_src;

#[allow(non_camel_case_types, non_upper_case_globals, non_snake_case)]
mod bindings {
    #[cfg(buildscript_run)]
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

#[cfg(not(buildscript_run))]
compile_error!(
    "pq-sys relies on build scripts beeing executed. \n \
     Please double check that you don't have a `[target.*.pq]` entry \
     in your `.cargo/config.toml`\n \
     These entries prevent build scripts from beeing run"
);

pub use bindings::*;

// ---------------------------------------------------------------------------------------
// Gatehouse's patch (see vendor/README.md): two of libpq's functions as diesel calls them
// are wrapped, so that the application can see what diesel keeps to itself, and nothing
// else changes. The items below shadow the glob import above.

/// Opens a connection as libpq's `PQconnectdb` does, and remembers the socket of the
/// connection it opened for [`hooks::take_connected_socket`] on this thread.
///
/// # Safety
/// As libpq's `PQconnectdb`: `conninfo` is a valid NUL-terminated string.
#[allow(non_snake_case)]
pub unsafe fn PQconnectdb(conninfo: *const ::std::os::raw::c_char) -> *mut PGconn {
    let conn = unsafe { bindings::PQconnectdb(conninfo) };
    let socket = if conn.is_null() {
        -1
    } else {
        unsafe { bindings::PQsocket(conn) }
    };
    hooks::CONNECTED_SOCKET.with(|s| s.set(socket));
    conn
}

/// Installs [`hooks`]' notice processor, whatever processor is passed: diesel passes one
/// that drops every notice, among them PostgreSQL's warning that a COMMIT's wait for a
/// synchronous standby was cancelled after the transaction committed locally.
///
/// # Safety
/// As libpq's `PQsetNoticeProcessor`: `conn` is a live connection.
#[allow(non_snake_case)]
pub unsafe fn PQsetNoticeProcessor(
    conn: *mut PGconn,
    _proc: PQnoticeProcessor,
    _arg: *mut ::std::os::raw::c_void,
) -> PQnoticeProcessor {
    unsafe {
        bindings::PQsetNoticeProcessor(conn, Some(hooks::record_notice), ::std::ptr::null_mut())
    }
}

/// What the wrapped functions above remember, for the thread that called them.
///
/// libpq runs a connection's notice processor on the thread that is waiting for that
/// connection's result, so the notices a thread sees between [`clear_notices`] and
/// [`take_notices`] came with the statements it ran on its connection in between.
pub mod hooks {
    use std::cell::{Cell, RefCell};
    use std::ffi::CStr;

    /// Notices kept per thread between `clear_notices` and `take_notices`, at most.
    const KEPT: usize = 16;

    thread_local! {
        pub(crate) static CONNECTED_SOCKET: Cell<i32> = const { Cell::new(-1) };
        static NOTICES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    /// The socket (file descriptor) of the connection this thread's last `PQconnectdb`
    /// opened, once; `None` when it opened none (or it was taken already).
    pub fn take_connected_socket() -> Option<i32> {
        let socket = CONNECTED_SOCKET.with(|s| s.replace(-1));
        (socket >= 0).then_some(socket)
    }

    /// Forgets the notices this thread received so far.
    pub fn clear_notices() {
        NOTICES.with(|n| n.borrow_mut().clear());
    }

    /// The notices this thread received since [`clear_notices`] (the first few), as libpq
    /// formats them (`WARNING:  message\nDETAIL:  …`).
    pub fn take_notices() -> Vec<String> {
        NOTICES.with(|n| std::mem::take(&mut *n.borrow_mut()))
    }

    /// Shuts a socket down both ways (`shutdown(2)`), so that a thread blocked reading or
    /// writing it returns at once with an error, and nothing is sent to the server
    /// beyond TCP's own FIN. The descriptor stays open; its owner closes it.
    ///
    /// # Errors
    /// `shutdown(2)`'s, e.g. `ENOTCONN` when the peer is gone already.
    pub fn shutdown_socket(socket: i32) -> std::io::Result<()> {
        let done = unsafe { libc::shutdown(socket, libc::SHUT_RDWR) };
        if done == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    pub(crate) unsafe extern "C" fn record_notice(
        _arg: *mut std::os::raw::c_void,
        message: *const std::os::raw::c_char,
    ) {
        if message.is_null() {
            return;
        }
        let text = unsafe { CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned();
        // A notice processor must not unwind into C: `try_with` and `try_borrow_mut`
        // skip the notice instead of panicking (thread exit, re-entrance).
        let _ = NOTICES.try_with(|n| {
            if let Ok(mut kept) = n.try_borrow_mut() {
                if kept.len() < KEPT {
                    kept.push(text);
                }
            }
        });
    }
}

#[cfg(not(feature = "buildtime_bindgen"))]
#[test]
fn check_generated_bindings_match() {
    let libpq_include_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/pq-src/source/src/interfaces/libpq/"
    );
    let postgres_include_path = concat!(env!("CARGO_MANIFEST_DIR"), "/pq-src/source/src/include");
    let additional_includes_path =
        concat!(env!("CARGO_MANIFEST_DIR"), "/pq-src/additional_include/");

    let builder = include!("make_bindings.rs").clang_args([
        "-I",
        libpq_include_path,
        "-I",
        postgres_include_path,
        "-I",
        additional_includes_path,
    ]);

    let generated_bindings = builder.generate().expect("Unable to generate bindings");

    let mut out = Vec::<u8>::new();
    generated_bindings.write(Box::new(&mut out)).unwrap();
    let generated_bindings = String::from_utf8(out).unwrap();

    let bundled_bindings =
        std::fs::read_to_string(String::from(env!("OUT_DIR")) + "/bindings.rs").unwrap();
    similar_asserts::assert_eq!(generated_bindings, bundled_bindings,)
}
