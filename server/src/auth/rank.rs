//! Who may act on whom.
//!
//! Nobody may revoke, disable, delete or change a user whose role is higher than their own:
//! an operator (or an API key, which acts as an operator) may kick an admin's sockets, but not
//! cut off the admin's tokens, or else one leaked key could lock every admin out. Equal roles
//! may act on each other. Nobody may give a role higher than their own either.

use switchboard_sdk::{Identity, Role};

/// Why an action on a user was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RankError {
    /// The target's role is higher than the actor's.
    #[error("a user with the {actor} role may not act on a user with the {target} role")]
    Outranked {
        /// The actor's highest role (`none` when it has none).
        actor: &'static str,
        /// The target's highest role.
        target: &'static str,
    },
    /// The actor tried to hand out a role higher than its own.
    #[error("a user with the {actor} role may not grant the {role} role")]
    Grant {
        /// The actor's highest role.
        actor: &'static str,
        /// The role asked for.
        role: &'static str,
    },
}

/// The strongest of a set of roles, if any.
pub fn highest(roles: &[Role]) -> Option<Role> {
    Role::ALL.into_iter().find(|r| roles.contains(r))
}

fn name(role: Option<Role>) -> &'static str {
    role.map_or("none", Role::as_str)
}

/// Whether `actor` may revoke the tokens of, disable, delete or change a user holding
/// `target_roles`: only if the actor's highest role is at least the target's.
pub fn may_act_on(actor: &Identity, target_roles: &[Role]) -> Result<(), RankError> {
    let mine = highest(&actor.roles);
    match (mine, highest(target_roles)) {
        (_, None) => Ok(()),
        (Some(a), Some(t)) if a.grants(t) => Ok(()),
        (_, Some(t)) => Err(RankError::Outranked {
            actor: name(mine),
            target: t.as_str(),
        }),
    }
}

/// Whether `actor` may give a user `roles`: none of them may be higher than the actor's own.
pub fn may_grant(actor: &Identity, roles: &[Role]) -> Result<(), RankError> {
    let mine = highest(&actor.roles);
    for &r in roles {
        if !mine.is_some_and(|a| a.grants(r)) {
            return Err(RankError::Grant {
                actor: name(mine),
                role: r.as_str(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use switchboard_sdk::{Credential, UserId};

    use super::*;

    fn user(roles: &[Role]) -> Identity {
        Identity {
            user_id: Some(UserId(7)),
            username: "u".into(),
            roles: roles.to_vec(),
            credential: Credential::Token {
                jti: "j".into(),
                expires_at: 0,
            },
        }
    }

    fn api_key() -> Identity {
        Identity {
            user_id: None,
            username: "apikey:svc".into(),
            roles: vec![Role::Operator],
            credential: Credential::ApiKey { id: 1 },
        }
    }

    #[test]
    fn nobody_acts_on_a_higher_role() {
        use Role::*;
        assert!(may_act_on(&user(&[Admin]), &[Admin]).is_ok());
        assert!(may_act_on(&user(&[Admin]), &[Operator, Member]).is_ok());
        assert!(may_act_on(&user(&[Operator]), &[Operator]).is_ok());
        assert!(may_act_on(&user(&[Operator]), &[Member]).is_ok());
        assert!(may_act_on(&user(&[Member]), &[]).is_ok());
        let e = may_act_on(&user(&[Operator]), &[Member, Admin]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a user with the operator role may not act on a user with the admin role"
        );
        assert!(may_act_on(&api_key(), &[Admin]).is_err());
        assert!(may_act_on(&api_key(), &[Operator]).is_ok());
        assert!(may_act_on(&user(&[Member]), &[Operator]).is_err());
        assert!(may_act_on(&user(&[]), &[Member]).is_err());
    }

    #[test]
    fn nobody_grants_a_higher_role() {
        use Role::*;
        assert!(may_grant(&user(&[Admin]), &[Admin, Member]).is_ok());
        assert!(may_grant(&user(&[Operator]), &[Operator, Member]).is_ok());
        assert!(may_grant(&api_key(), &[Admin]).is_err());
        assert!(may_grant(&user(&[Member]), &[Operator]).is_err());
    }
}
