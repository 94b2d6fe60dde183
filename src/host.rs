//! Facts about this host and its user: the FQDN (default agent name), root
//! or not, and the login name (for squelch records).

/// The host's fully qualified name, else its plain hostname, else `localhost`.
#[must_use]
pub(crate) fn fqdn() -> String {
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
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The current user's login name: the password database's entry for the
/// effective uid, else the environment (`USER`, `LOGNAME`).
///
/// The password database comes first because a service manager or cron
/// starts the agent (and the CLI in scripts) with neither variable set,
/// and a squelch must still name who set it (SPEC §1). The environment is
/// the fallback for a uid with no entry (a container's arbitrary uid).
#[must_use]
pub(crate) fn user_name() -> Option<String> {
    let from_passwd = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|user| user.name);
    login_name(from_passwd, |var| std::env::var(var).ok())
}

/// The rule of `user_name`, given the password database's answer and a way
/// to read the environment.
fn login_name(from_passwd: Option<String>, var: impl Fn(&str) -> Option<String>) -> Option<String> {
    from_passwd.filter(|name| !name.is_empty()).or_else(|| {
        ["USER", "LOGNAME"]
            .into_iter()
            .find_map(|name| var(name).filter(|value| !value.is_empty()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The password database's answer, the environment, the expected name.
    type Case = (
        Option<&'static str>,
        &'static [(&'static str, &'static str)],
        Option<&'static str>,
    );

    #[test]
    fn the_login_name_prefers_the_password_database_then_user_then_logname() {
        let cases: [Case; 6] = [
            (
                Some("ann"),
                &[("USER", "bob"), ("LOGNAME", "cat")],
                Some("ann"),
            ),
            (Some("ann"), &[], Some("ann")),
            (None, &[("USER", "bob"), ("LOGNAME", "cat")], Some("bob")),
            (None, &[("USER", ""), ("LOGNAME", "cat")], Some("cat")),
            (Some(""), &[("LOGNAME", "cat")], Some("cat")),
            (None, &[], None),
        ];
        for (passwd, vars, want) in cases {
            let got = login_name(passwd.map(str::to_string), |name| {
                vars.iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| (*value).to_string())
            });
            assert_eq!(got.as_deref(), want, "passwd {passwd:?}, env {vars:?}");
        }
    }
}
