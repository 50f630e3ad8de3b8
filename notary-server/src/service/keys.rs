//! The server-managed keys: creation and rotation, their binding to one repository and role
//! (and binding the keys stored roots list, in the background), and what a root may name.

use super::*;
use crate::gun::Gun;
use crate::role::Role;

impl RepoService {
    /// Bind the server keys that stored roots list to their repositories, in the background
    /// (500 roots a step, resumable: a Go database's first start serves at once, however many
    /// repositories it holds); steps that fail are retried.
    pub fn spawn_key_binding(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let mut steps = 0u64;
            loop {
                match me.store.bind_stored_keys(500).await {
                    Ok(true) => break,
                    Ok(false) => steps += 1,
                    Err(e) => {
                        tracing::warn!(error = %e, "binding stored server keys to their repositories; retrying in 5 s");
                        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    }
                }
            }
            me.bindings_complete
                .store(true, std::sync::atomic::Ordering::SeqCst);
            if steps > 0 {
                tracing::info!(
                    roots = steps * 500,
                    seconds = started.elapsed().as_secs_f64(),
                    "bound the server keys that stored roots list to their repositories"
                );
            }
        });
    }

    /// `GET …/{timestamp,snapshot}.key`: the key the root lists for the role if the signer
    /// holds it, else a (pending) new key, if `may_create` allows one. A refusal is the
    /// caller's own error (`E`: the HTTP layer's rate limit answer), passed through as is.
    pub async fn get_key<E: From<ServiceError>>(
        &self,
        gun: &Gun,
        role: &Role,
        may_create: impl FnOnce() -> Result<(), E>,
        actor: &Actor,
    ) -> Result<PublicKey, E> {
        if let Some(root) = self.current_root(gun).await? {
            if let Some(Some(r)) = root.roles.get(role.as_str()) {
                for id in &r.keyids {
                    if let Some(info) = self.crypto.get_key(id).await.map_err(ServiceError::from)? {
                        return Ok(info.public);
                    }
                }
            }
        }
        self.writable()?;
        may_create()?;
        Ok(self.create_key(gun, role, Action::KeyCreate, actor).await?)
    }

    /// A new server key for (GUN, role), bound to them, and its audit record (`role:key ID`).
    pub(super) async fn create_key(
        &self,
        gun: &Gun,
        role: &Role,
        action: Action,
        actor: &Actor,
    ) -> Result<PublicKey, ServiceError> {
        let key = self
            .crypto
            .create_key(role, gun, &self.key_algorithm)
            .await?;
        self.store.bind_key(&key.id(), gun, role).await?;
        let record = Record {
            action,
            gun,
            roles: format!("{role}:{}", key.id()),
            actor,
        };
        self.store.record(crate::storage::now(), &record).await?;
        record.log();
        Ok(key)
    }

    /// The GUN and role a server key is bound to, if any (from the store, or the trust
    /// service's own record for keys made before bindings existed, which it then binds).
    pub(super) async fn binding(&self, key_id: &str) -> Result<Option<KeyBinding>, ServiceError> {
        if let Some(b) = lock(&self.bindings).get(key_id) {
            return Ok(Some(b.clone()));
        }
        let b = self.store.key_binding(key_id).await?;
        if let Some(b) = &b {
            lock(&self.bindings).put(key_id.to_string(), b.clone());
        }
        Ok(b)
    }

    /// Refuse a root that gives the timestamp or snapshot role a server key of another
    /// repository or role (its ID is public: without this check the server would sign this
    /// repository's metadata with another repository's key). Keys the server does not hold
    /// are the owner's; a held key nobody bound yet is bound to this GUN and role now.
    pub(super) async fn check_root_keys(
        &self,
        gun: &Gun,
        root: &SignedFile,
    ) -> Result<(), ServiceError> {
        let root: md::Root = root
            .body()
            .map_err(|e| ServiceError::MalformedJson(format!("root: {e}")))?;
        for role in [Role::TIMESTAMP, Role::SNAPSHOT] {
            for id in root.role_keyids(&role) {
                let owner = match self.binding(&id).await? {
                    Some(b) => Some(b),
                    None => match self.crypto.get_key(&id).await? {
                        None => continue,
                        // No record ties this held key to a repository, and the stored roots
                        // are not all read yet: one of them may list it.
                        Some(info)
                            if info.gun.is_empty()
                                && !self
                                    .bindings_complete
                                    .load(std::sync::atomic::Ordering::SeqCst) =>
                        {
                            tracing::warn!(gun = %gun, role = %role, key = id, "a root names a server key not bound yet; the stored roots are still being read (first start on this database): try again shortly");
                            return Err(ServiceError::NotYet("the stored roots are still being read for server keys (first start on this database)"));
                        }
                        Some(info)
                            if (info.gun.is_empty() || info.gun == **gun)
                                && (info.role.is_empty() || info.role == role) =>
                        {
                            self.store.bind_key(&id, gun, &role).await?;
                            continue;
                        }
                        Some(info) => Some(KeyBinding {
                            gun: info.gun,
                            role: info.role,
                        }),
                    },
                };
                if let Some(KeyBinding { gun: g, role: r }) =
                    owner.filter(|b| b.gun != **gun || b.role != role)
                {
                    tracing::warn!(
                        gun = %gun,
                        role = %role,
                        key = id,
                        bound_to = g,
                        bound_role = r,
                        "refused a root listing another repository's server key"
                    );
                    return Err(ServiceError::from(ValidationError::BadRoot(format!(
                        "key {id} is a server-managed {r} key of another repository: a root may give the {role} role only this \
                         repository's own key (GET …/{role}.key)"
                    ))));
                }
            }
        }
        Ok(())
    }

    /// `to_sign` without the keys bound to another repository or role: they never sign here.
    pub(super) async fn own_keys(
        &self,
        gun: &Gun,
        mut to_sign: ToSign,
    ) -> Result<ToSign, ServiceError> {
        let role = to_sign.role.name.clone();
        let mut foreign = Vec::new();
        for id in to_sign.role.keys.keys() {
            if let Some(KeyBinding { gun: g, role: r }) = self.binding(id).await? {
                if g != **gun || r != role {
                    tracing::warn!(
                        gun = %gun,
                        role,
                        key = id,
                        bound_to = g,
                        "not signing with another repository's key"
                    );
                    foreign.push(id.clone());
                }
            }
        }
        for id in foreign {
            to_sign.role.keys.remove(&id);
        }
        Ok(to_sign)
    }

    /// `POST …/{timestamp,snapshot}.key`: a new key; it becomes active once a root lists it.
    pub(crate) async fn rotate_key(
        &self,
        gun: &Gun,
        role: &Role,
        actor: &Actor,
    ) -> Result<PublicKey, ServiceError> {
        self.writable()?;
        self.create_key(gun, role, Action::KeyRotate, actor).await
    }
}
