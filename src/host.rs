//! The host's own name: the default agent name is its FQDN.

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
