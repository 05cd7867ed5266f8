//! `--user UID[:GID]`: who the agent runs as.

use std::{fmt, str::FromStr};

/// The uid and gid the agent's command runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserSpec {
    /// User id (never 0).
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// An unusable `--user` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// Not `UID[:GID]` or a known user name.
    #[error(
        "invalid --user `{0}`: write UID[:GID] (e.g. 1000:1000) or a user name from /etc/passwd"
    )]
    Malformed(String),
    /// uid 0 would let the agent leave its cgroup and edit cgroup files.
    #[error(
        "refusing --user `{0}`: an agent running as uid 0 could move itself out of its cgroup; \
         pick an unprivileged uid, or leave --user out for a uid of the agent's own"
    )]
    Root(String),
}

impl FromStr for UserSpec {
    type Err = UserError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (user, group) = match s.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (s, None),
        };
        let (uid, primary_gid) = match user.parse::<u32>() {
            Ok(uid) => (uid, None),
            Err(_) => match nix::unistd::User::from_name(user) {
                Ok(Some(u)) => (u.uid.as_raw(), Some(u.gid.as_raw())),
                _ => return Err(UserError::Malformed(s.into())),
            },
        };
        let gid = match group {
            Some(g) => match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => match nix::unistd::Group::from_name(g) {
                    Ok(Some(grp)) => grp.gid.as_raw(),
                    _ => return Err(UserError::Malformed(s.into())),
                },
            },
            None => primary_gid.unwrap_or(uid),
        };
        if uid == 0 {
            return Err(UserError::Root(s.into()));
        }
        Ok(UserSpec { uid, gid })
    }
}

impl fmt::Display for UserSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.uid, self.gid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids_and_refuses_root() {
        assert_eq!(
            "1000:1001".parse(),
            Ok(UserSpec {
                uid: 1000,
                gid: 1001
            })
        );
        assert_eq!(
            "1000".parse(),
            Ok(UserSpec {
                uid: 1000,
                gid: 1000
            })
        );
        assert_eq!("nobody".parse::<UserSpec>().unwrap().uid, 65534);
        assert!(matches!("0".parse::<UserSpec>(), Err(UserError::Root(_))));
        assert!(matches!(
            "root".parse::<UserSpec>(),
            Err(UserError::Root(_))
        ));
        assert!(matches!(
            "1000:x-no-such-group".parse::<UserSpec>(),
            Err(UserError::Malformed(_))
        ));
        assert!(
            "no-such-user-xyz"
                .parse::<UserSpec>()
                .unwrap_err()
                .to_string()
                .contains("UID[:GID]")
        );
    }
}
