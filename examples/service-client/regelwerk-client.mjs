// A small regelwerk client for Node.js 18+ (plain JavaScript, the built-in fetch, no dependencies).
// Every error of the service is an RFC 9457 problem document; it is thrown as a RegelwerkError that
// carries the same code and data as the engine's typed exception (permission_denied + explain, ...).

export class RegelwerkError extends Error {
  constructor(problem) {
    super(problem.detail || problem.title);
    this.name = "RegelwerkError";
    this.status = problem.status;
    this.code = problem.code;
    this.problem = problem;
  }
}

export class RegelwerkClient {
  /** @param {string} baseUrl e.g. http://127.0.0.1:8080  @param {string} apiKey the tenant's key */
  constructor(baseUrl, apiKey) {
    this.baseUrl = baseUrl.replace(/\/$/, "");
    this.apiKey = apiKey;
  }

  async request(method, path, body) {
    const response = await fetch(this.baseUrl + path, {
      method,
      headers: { "Authorization": `Bearer ${this.apiKey}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const type = response.headers.get("content-type") || "";
    const data = type.includes("json") ? await response.json() : await response.text();
    if (!response.ok) {
      throw new RegelwerkError(typeof data === "object" ? data : { status: response.status, detail: data });
    }
    return data;
  }

  // deployments
  deploy(files, matrix = "") { return this.request("POST", "/v1/deployments", { files, matrix }); }
  validate(files) { return this.request("POST", "/v1/deployments/validate", { files }); }
  deployments() { return this.request("GET", "/v1/deployments"); }

  // decisions
  can(actor, action, resource, extra = {}) {
    return this.request("POST", "/v1/can", { actor, action, resource, ...extra });
  }
  /** Many questions in one call: resources = [{type, id, data, actions: [...]}] */
  canBatch(actor, resources, extra = {}) {
    return this.request("POST", "/v1/can/batch", { actor, resources, ...extra });
  }
  decide(table, inputs) { return this.request("POST", "/v1/decide", { table, inputs }); }

  // workflow instances
  start(workflow, data, actor, id) {
    return this.request("POST", "/v1/instances", id ? { workflow, data, actor, id } : { workflow, data, actor });
  }
  get(id) { return this.request("GET", `/v1/instances/${encodeURIComponent(id)}`); }
  fire(id, event, actor, data = {}) {
    return this.request("POST", `/v1/instances/${encodeURIComponent(id)}/fire`, { event, actor, data });
  }
  available(id, actor) { return this.request("POST", `/v1/instances/${encodeURIComponent(id)}/available`, { actor }); }
  explain(id, event, actor) {
    return this.request("POST", `/v1/instances/${encodeURIComponent(id)}/explain`, { event, actor });
  }
  history(id) { return this.request("GET", `/v1/instances/${encodeURIComponent(id)}/history`); }
}
