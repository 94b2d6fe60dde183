//! Facts about this host and its user: the FQDN (default agent name), root
//! or not, and the login name (for squelch records).

/// The host's fully qualified name, else its plain hostname, else `localhost`.
#[must_use]
pub fn fqdn() -> String {
    let Ok(host) = dns_lookup::get_hostname() else {
        return "localhost".into();
    };
    let hints = dns_lookup::AddrInfoHints {
        flags: libc::AI_CANONNAME,
        ..dns_lookup::AddrInfoHints::default()
    };
    let canonical = dns_lookup::getaddrinfo(Some(&host), None, Some(hints))
        .ok()
        .and_then(|mut infos| infos.find_map(|info| info.ok().and_then(|i| i.canonname)));
    match canonical {
        Some(name) if name.contains('.') => name,
        _ => host,
    }
}

/// True when running as root.
#[must_use]
#[expect(unsafe_code, reason = "geteuid has no preconditions and cannot fail")]
pub fn is_root() -> bool {
    // SAFETY: geteuid takes no arguments and always succeeds.
    unsafe { libc::geteuid() == 0 }
}

/// The current user's login name, from the environment (`USER`, `LOGNAME`).
#[must_use]
pub fn user_name() -> Option<String> {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
}
