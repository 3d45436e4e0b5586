//! WebSocket events: handlers, typed binding of `data`, middleware, and the registry addons
//! fill in at start-up.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::client::{Client, Session};
use crate::hub::Hub;
use crate::identity::{Identity, Role, UserId};
use crate::protocol::{Data, Envelope, FrameData, MAX_EVENT_LEN};

pub use crate::protocol::{EventError, bind};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a successful handler answers.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// Reply with code 0 and this `data` (`null` is omitted on the wire).
    Data(Value),
    /// Reply with code 0 and this JSON text as `data`, untouched (e.g. the request's own data).
    Raw(Data),
    /// The handler replied itself (or chose not to); the router sends nothing.
    Silent,
}

impl Reply {
    /// Serialises any value as the reply data.
    pub fn json<T: Serialize>(value: &T) -> Result<Reply, EventError> {
        serde_json::to_value(value)
            .map(Reply::Data)
            .map_err(|e| EventError::failed(format!("reply not serialisable: {e}")))
    }
    /// An empty success reply.
    pub fn ok() -> Reply {
        Reply::Data(Value::Null)
    }
}

impl From<Value> for Reply {
    fn from(v: Value) -> Self {
        Reply::Data(v)
    }
}

impl From<Data> for Reply {
    fn from(d: Data) -> Self {
        Reply::Raw(d)
    }
}

/// A handler's outcome.
pub type EventResult = Result<Reply, EventError>;

/// Everything a handler may use: the connection, the hub, the request's correlation data.
#[derive(Clone)]
pub struct EventContext {
    client: Client,
    hub: Arc<dyn Hub>,
    event: Arc<str>,
    seqno: Option<Value>,
    binary: bool,
}

impl EventContext {
    /// Built by the server for each request (`event` is the route's shared name).
    pub fn new(
        client: Client,
        hub: Arc<dyn Hub>,
        event: Arc<str>,
        seqno: Option<Value>,
        binary: bool,
    ) -> Self {
        EventContext {
            client,
            hub,
            event,
            seqno,
            binary,
        }
    }
    /// The calling connection.
    pub fn client(&self) -> &Client {
        &self.client
    }
    /// The send functions.
    pub fn hub(&self) -> &Arc<dyn Hub> {
        &self.hub
    }
    /// The caller's identity, `None` when anonymous.
    pub fn identity(&self) -> Option<Arc<Identity>> {
        self.client.identity()
    }
    /// The caller's user id, `None` when anonymous or an API key.
    pub fn user_id(&self) -> Option<UserId> {
        self.client.user_id()
    }
    /// The per-connection key/value store.
    pub fn session(&self) -> &Session {
        self.client.session()
    }
    /// The event name of the request.
    pub fn event(&self) -> &str {
        &self.event
    }
    /// The request's seqno.
    pub fn seqno(&self) -> Option<&Value> {
        self.seqno.as_ref()
    }
    /// Whether the request came as a binary frame (replies then go back in binary).
    pub fn is_binary(&self) -> bool {
        self.binary
    }
    /// Sends a success reply to the caller now, echoing event and seqno (hotgo's
    /// `SendSuccess`). Use with [`Reply::Silent`] or for progress messages. `data` is a
    /// [`Value`], or the request's own [`Data`] to send it back untouched.
    pub fn send_success<D: FrameData + ?Sized>(&self, data: &D) -> bool {
        let mut env = Envelope::new(&self.event, data);
        env.seqno = self.seqno.as_ref();
        self.client.send_envelope(&env, self.binary)
    }
    /// Sends an error reply to the caller now, echoing event and seqno (hotgo's `SendError`).
    pub fn send_error(&self, err: &EventError) -> bool {
        let env = Envelope::error(&self.event, err, self.seqno.as_ref());
        self.client.send_envelope(&env, self.binary)
    }
}

/// A type-erased event handler.
pub trait Handler: Send + Sync + 'static {
    /// Handles one request.
    fn call(&self, ctx: EventContext, data: Data) -> BoxFuture<'static, EventResult>;
}

struct FnHandler<F, T> {
    f: F,
    _data: PhantomData<fn(T)>,
}

impl<F, Fut, T> Handler for FnHandler<F, T>
where
    F: Fn(EventContext, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = EventResult> + Send + 'static,
    T: DeserializeOwned + Send + 'static,
{
    fn call(&self, ctx: EventContext, data: Data) -> BoxFuture<'static, EventResult> {
        match bind::<T>(&data) {
            Ok(t) => Box::pin((self.f)(ctx, t)),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

/// The JSON schema of a payload type, taken from its poem-openapi [`Type`] (derive
/// `poem_openapi::Object` on a struct, `Enum` on an enum), so the event document describes
/// exactly the type a handler binds or answers: there is no second, hand-written schema.
#[derive(Clone, Copy)]
pub struct Schema(fn(&mut Registry) -> MetaSchemaRef);

impl Schema {
    /// The schema of `T`.
    pub fn of<T: Type>() -> Schema {
        Schema(register_schema::<T>)
    }
    /// Adds the schema (and every schema it refers to) to `registry`; answers the schema
    /// itself, or a `#/components/schemas/<Name>` reference for named types.
    pub fn resolve(&self, registry: &mut Registry) -> MetaSchemaRef {
        (self.0)(registry)
    }
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Schema")
    }
}

fn register_schema<T: Type>(registry: &mut Registry) -> MetaSchemaRef {
    T::register(registry);
    T::schema_ref()
}

/// What the event document says about one event: its name, who may call it, what it does,
/// and the schemas of its request and reply `data`.
#[derive(Clone, Debug)]
pub struct EventDoc {
    /// The event name.
    pub name: String,
    /// Who registered it (`host` for the server's own events).
    pub addon: String,
    /// The role a caller needs, `None` when any connection may call it.
    pub role: Option<Role>,
    /// What the event does.
    pub description: String,
    /// The request's `data`.
    pub request: Schema,
    /// The reply's `data`; `None` when the reply carries none.
    pub reply: Option<Schema>,
}

/// Wraps an async function `fn(EventContext, T) -> EventResult` as a [`Handler`]; `T` is any
/// deserialisable type: the handler's own struct, `serde_json::Value`, or [`Data`] to take the
/// JSON text unparsed (cheapest when data is passed through).
pub fn handler_fn<F, Fut, T>(f: F) -> Arc<dyn Handler>
where
    F: Fn(EventContext, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = EventResult> + Send + 'static,
    T: DeserializeOwned + Send + 'static,
{
    Arc::new(FnHandler {
        f,
        _data: PhantomData,
    })
}

/// Middleware around handlers (use / next / abort): code before `next.run` runs
/// before the handler, code after it runs after; returning without calling `next` aborts
/// with that result. `data` is the request's JSON text: `data.bind::<T>()` reads it,
/// `Data::from_value(..)` replaces it.
///
/// ```
/// use switchboard_sdk::event::{EventContext, EventError, EventResult, Middleware, Next};
/// use switchboard_sdk::protocol::Data;
/// struct RequireLogin;
/// #[switchboard_sdk::async_trait]
/// impl Middleware for RequireLogin {
///     async fn handle(&self, ctx: EventContext, data: Data, next: Next<'_>) -> EventResult {
///         if ctx.user_id().is_none() {
///             return Err(EventError::forbidden("log in first"));
///         }
///         next.run(ctx, data).await
///     }
/// }
/// ```
#[async_trait]
pub trait Middleware: Send + Sync + 'static {
    /// Handles a request, usually by calling `next.run(ctx, data)`.
    async fn handle(&self, ctx: EventContext, data: Data, next: Next<'_>) -> EventResult;
}

/// The rest of a middleware chain.
pub struct Next<'a> {
    rest: &'a [Arc<dyn Middleware>],
    handler: &'a dyn Handler,
}

impl<'a> Next<'a> {
    /// Runs the remaining middleware and the handler.
    pub async fn run(self, ctx: EventContext, data: Data) -> EventResult {
        match self.rest.split_first() {
            Some((first, rest)) => {
                first
                    .handle(
                        ctx,
                        data,
                        Next {
                            rest,
                            handler: self.handler,
                        },
                    )
                    .await
            }
            None => self.handler.call(ctx, data).await,
        }
    }
}

/// A registered event.
pub struct Route {
    name: Arc<str>,
    handler: Arc<dyn Handler>,
    role: Option<Role>,
    middleware: Vec<Arc<dyn Middleware>>,
    addon: String,
    description: String,
    request: Schema,
    reply: Option<Schema>,
}

impl Route {
    /// The event name, shared by every request's [`EventContext`].
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }
    /// The role a caller needs, if any.
    pub fn role(&self) -> Option<Role> {
        self.role
    }
    /// The addon that registered it.
    pub fn addon(&self) -> &str {
        &self.addon
    }
    /// Runs the route's middleware chain and its handler. The caller (the server) has already
    /// checked [`Route::role`].
    pub async fn call(&self, ctx: EventContext, data: Data) -> EventResult {
        Next {
            rest: &self.middleware,
            handler: &*self.handler,
        }
        .run(ctx, data)
        .await
    }
    /// What the event document says about it.
    pub fn doc(&self) -> EventDoc {
        EventDoc {
            name: self.name.to_string(),
            addon: self.addon.clone(),
            role: self.role,
            description: self.description.clone(),
            request: self.request,
            reply: self.reply,
        }
    }
}

/// Options of one registered event.
pub struct RouteBuilder<'a> {
    route: Option<&'a mut Route>,
}

impl RouteBuilder<'_> {
    /// Requires a role (e.g. `Role::Operator`); others get 403.
    pub fn role(mut self, role: Role) -> Self {
        if let Some(r) = self.route.as_deref_mut() {
            r.role = Some(role);
        }
        self
    }
    /// Says what the event does, for the event document.
    pub fn describe(mut self, text: &str) -> Self {
        if let Some(r) = self.route.as_deref_mut() {
            r.description = text.to_string();
        }
        self
    }
    /// Names the type the handler answers as reply `data` (what it passes to [`Reply::json`]
    /// or [`EventContext::send_success`]), for the event document. Without it the document
    /// says the reply carries no data.
    pub fn reply<R: Type>(mut self) -> Self {
        if let Some(r) = self.route.as_deref_mut() {
            r.reply = Some(Schema::of::<R>());
        }
        self
    }
    /// Adds middleware that runs only for this event, after the global chain.
    pub fn middleware(mut self, m: impl Middleware) -> Self {
        if let Some(r) = self.route.as_deref_mut() {
            r.middleware.push(Arc::new(m));
        }
        self
    }
}

/// A start-up error in event registration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The name belongs to a built-in event.
    #[error("addon `{addon}` registers event `{event}`, which is a reserved built-in event")]
    Reserved {
        /// Addon name.
        addon: String,
        /// Event name.
        event: String,
    },
    /// The name was registered before.
    #[error("event `{event}` is registered twice (by addon `{first}` and by addon `{second}`)")]
    Duplicate {
        /// Event name.
        event: String,
        /// First registrant.
        first: String,
        /// Second registrant.
        second: String,
    },
    /// Not a usable event name.
    #[error("addon `{addon}` registers an invalid event name `{event}` (1-128 bytes)")]
    Invalid {
        /// Addon name.
        addon: String,
        /// Event name.
        event: String,
    },
}

/// Where addons register their events at start-up.
///
/// ```
/// use switchboard_sdk::event::{EventContext, EventRegistry, EventResult};
/// async fn echo(_ctx: EventContext, data: serde_json::Value) -> EventResult {
///     Ok(data.into())
/// }
/// let mut reg = EventRegistry::reserving(&["ping"]);
/// reg.set_addon("demo");
/// reg.on("admin/addons/demo/echo", echo);
/// reg.on("ping", echo); // the server's own
/// assert!(reg.build().is_err());
/// ```
#[derive(Default)]
pub struct EventRegistry {
    routes: HashMap<String, Route>,
    global: Vec<Arc<dyn Middleware>>,
    errors: Vec<RegistryError>,
    addon: String,
    dummy: Option<Route>,
    reserved: &'static [&'static str],
}

impl EventRegistry {
    /// An empty registry that refuses no name but the invalid ones.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty registry that refuses `reserved` (the server passes the names of its own
    /// events, so an addon cannot shadow one).
    pub fn reserving(reserved: &'static [&'static str]) -> Self {
        EventRegistry {
            reserved,
            ..Self::default()
        }
    }

    /// Names the addon whose registrations follow (for error messages). The server calls this.
    pub fn set_addon(&mut self, name: &str) {
        self.addon = name.to_string();
    }

    /// Registers an async function `fn(EventContext, T) -> EventResult`. `T`, the type the
    /// handler binds `data` into, is also what the event document shows as the request: derive
    /// `poem_openapi::Object` on it beside `Deserialize` (or take `serde_json::Value` or
    /// [`Data`] for any JSON).
    pub fn on<F, Fut, T>(&mut self, name: &str, f: F) -> RouteBuilder<'_>
    where
        F: Fn(EventContext, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = EventResult> + Send + 'static,
        T: DeserializeOwned + Type + Send + 'static,
    {
        self.add(name, handler_fn(f), Schema::of::<T>())
    }

    /// Registers a type-erased handler; the document shows its request as any JSON.
    pub fn handler(&mut self, name: &str, handler: Arc<dyn Handler>) -> RouteBuilder<'_> {
        self.add(name, handler, Schema::of::<Data>())
    }

    fn add(&mut self, name: &str, handler: Arc<dyn Handler>, request: Schema) -> RouteBuilder<'_> {
        let addon = self.addon.clone();
        if name.is_empty() || name.len() > MAX_EVENT_LEN {
            self.errors.push(RegistryError::Invalid {
                addon,
                event: name.to_string(),
            });
            return RouteBuilder { route: None };
        }
        if self.reserved.contains(&name) {
            self.errors.push(RegistryError::Reserved {
                addon,
                event: name.to_string(),
            });
            return RouteBuilder { route: None };
        }
        if let Some(existing) = self.routes.get(name) {
            self.errors.push(RegistryError::Duplicate {
                event: name.to_string(),
                first: existing.addon.clone(),
                second: addon,
            });
            // Options of the rejected registration go nowhere.
            self.dummy = Some(Route {
                name: Arc::from(name),
                handler,
                role: None,
                middleware: Vec::new(),
                addon: String::new(),
                description: String::new(),
                request,
                reply: None,
            });
            return RouteBuilder {
                route: self.dummy.as_mut(),
            };
        }
        let route = self.routes.entry(name.to_string()).or_insert(Route {
            name: Arc::from(name),
            handler,
            role: None,
            middleware: Vec::new(),
            addon,
            description: String::new(),
            request,
            reply: None,
        });
        RouteBuilder { route: Some(route) }
    }

    /// Adds middleware that runs around every addon event.
    pub fn middleware(&mut self, m: impl Middleware) {
        self.global.push(Arc::new(m));
    }

    /// Finishes registration; fails with every problem found. Each route's chain is fixed
    /// here (the global middleware, then its own), so a request runs it without assembling it.
    pub fn build(self) -> Result<Vec<Route>, Vec<RegistryError>> {
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        let global = self.global;
        let mut routes: Vec<Route> = self
            .routes
            .into_values()
            .map(|mut r| {
                let own = std::mem::take(&mut r.middleware);
                r.middleware = global.iter().cloned().chain(own).collect();
                r
            })
            .collect();
        routes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(routes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo(_ctx: EventContext, data: Value) -> EventResult {
        Ok(data.into())
    }

    fn data(json: &str) -> Data {
        Data::from_json(json).unwrap()
    }

    #[test]
    fn raw_data_binds_through_the_path_tracking_deserializer() {
        let d = bind::<Data>(&data(r#"{ "k": [1, 2] }"#)).unwrap();
        assert_eq!(d.get(), r#"{ "k": [1, 2] }"#);
        #[derive(serde::Deserialize)]
        struct WithRaw {
            inner: Box<serde_json::value::RawValue>,
        }
        let w = bind::<WithRaw>(&data(r#"{"inner": {"x": "y"}}"#)).unwrap();
        assert_eq!(w.inner.get(), r#"{"x": "y"}"#);
    }

    #[test]
    fn duplicate_and_reserved_names_are_reported_together() {
        let mut reg = EventRegistry::reserving(&["join"]);
        reg.set_addon("a");
        reg.on("x", echo);
        reg.on("join", echo);
        reg.set_addon("b");
        reg.on("x", echo).role(Role::Admin);
        reg.on("", echo);
        let errs = reg.build().err().unwrap();
        assert_eq!(errs.len(), 3);
        assert!(errs[0].to_string().contains("reserved"));
        assert!(
            errs[1]
                .to_string()
                .contains("by addon `a` and by addon `b`")
        );
    }

    #[test]
    fn docs_carry_the_handlers_types_role_and_description() {
        #[derive(serde::Deserialize, poem_openapi::Object)]
        #[oai(rename = "DocTestMove")]
        struct Move {
            steps: u32,
        }
        async fn mv(_ctx: EventContext, _m: Move) -> EventResult {
            Ok(Reply::ok())
        }
        let mut reg = EventRegistry::new();
        reg.set_addon("chess");
        reg.on("admin/addons/chess/move", mv)
            .role(Role::Operator)
            .describe("Moves.")
            .reply::<Vec<String>>();
        reg.on("admin/addons/chess/echo", echo);
        let docs: Vec<EventDoc> = reg.build().ok().unwrap().iter().map(Route::doc).collect();
        let names: Vec<&str> = docs.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            ["admin/addons/chess/echo", "admin/addons/chess/move"]
        );
        let mv = &docs[1];
        assert_eq!(
            (mv.addon.as_str(), mv.role, mv.description.as_str()),
            ("chess", Some(Role::Operator), "Moves.")
        );
        let mut registry = Registry::new();
        let request = serde_json::to_value(mv.request.resolve(&mut registry)).unwrap();
        assert_eq!(request["$ref"], "#/components/schemas/DocTestMove");
        let schema = serde_json::to_value(&registry.schemas["DocTestMove"]).unwrap();
        assert_eq!(schema["properties"]["steps"]["type"], "integer");
        let reply = serde_json::to_value(mv.reply.unwrap().resolve(&mut registry)).unwrap();
        assert_eq!(reply["type"], "array");
        assert!(docs[0].reply.is_none(), "no reply type declared");
    }

    #[test]
    fn bind_names_nested_fields() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Inner {
            n: u8,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Outer {
            inner: Inner,
        }
        let e = bind::<Outer>(&data(r#"{"inner": {"n": 300}}"#)).unwrap_err();
        assert!(e.message.starts_with("data.inner.n:"), "{}", e.message);
        let e = bind::<Outer>(&Data::null()).unwrap_err();
        assert!(e.message.starts_with("data:"), "{}", e.message);
    }
}
