// HTTP client for the Switchboard API: bearer token, JSON in and out, errors as ApiError.

/** An HTTP error; `message` is the server's human message, `code` its machine code. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/**
 * @param {{getToken: () => string | null, onUnauthorized?: (err: ApiError) => void}} options
 *   `onUnauthorized` runs when an authenticated call answers 401 (token expired or revoked).
 */
export function createApi({ getToken, onUnauthorized }) {
  async function call(method, path, body) {
    const headers = { Accept: 'application/json' };
    const token = getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response;
    try {
      response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch {
      throw new ApiError(0, 'network_error', 'The server cannot be reached. Check your connection and try again.');
    }
    const text = await response.text();
    let payload = null;
    if (text) {
      try {
        payload = JSON.parse(text);
      } catch {
        payload = null;
      }
    }
    if (!response.ok) {
      const code = payload && payload.code ? String(payload.code) : `http_${response.status}`;
      const message = (payload && payload.message) || text.trim().slice(0, 200) || `${response.status} ${response.statusText}`;
      const err = new ApiError(response.status, code, message);
      if (response.status === 401 && token && onUnauthorized) onUnauthorized(err);
      throw err;
    }
    return payload;
  }

  const query = (params) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
    }
    const s = q.toString();
    return s ? `?${s}` : '';
  };

  return {
    get: (path, params) => call('GET', path + query(params), undefined),
    post: (path, body) => call('POST', path, body ?? {}),
    patch: (path, body) => call('PATCH', path, body ?? {}),
    del: (path) => call('DELETE', path, undefined),

    login: (username, password) => call('POST', '/api/auth/login', { username, password }),
    logout: () => call('POST', '/api/auth/logout', {}),
    me: () => call('GET', '/api/auth/me'),
    siteConfig: () => call('GET', '/api/site/config'),
    online: (params) => call('GET', '/api/websocket/online' + query(params)),
    kick: (body) => call('POST', '/api/websocket/kick', body),
    tags: () => call('GET', '/api/websocket/tags'),
    send: (target, body) => call('POST', `/api/websocket/send/${target}`, body),
    stats: () => call('GET', '/api/websocket/stats'),
    users: () => call('GET', '/api/users'),
    createUser: (body) => call('POST', '/api/users', body),
    updateUser: (id, body) => call('PATCH', `/api/users/${encodeURIComponent(id)}`, body),
    deleteUser: (id) => call('DELETE', `/api/users/${encodeURIComponent(id)}`),
    apiKeys: () => call('GET', '/api/apikeys'),
    createApiKey: (name) => call('POST', '/api/apikeys', { name }),
    revokeApiKey: (id) => call('DELETE', `/api/apikeys/${encodeURIComponent(id)}`),
    audit: (params) => call('GET', '/api/audit' + query(params)),
  };
}
