"""A small schema registry for the tests: the calls of Confluent's REST API
that streamlyr and confluent-kafka's serializers make (no Confluent, Apicurio
or Karapace registry can be installed here from Maven Central or PyPI).

    python registry.py STATE_FILE [USER:PASSWORD]

Prints the port it listens on (127.0.0.1), then serves until killed. The
subjects and schemas live in STATE_FILE, so a registry killed and started
again on the same file (a registry that was down for a while) knows them.
Compatibility is not checked; registering the same schema again under a
subject gives its id.
"""
import base64, json, os, re, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

state_file = sys.argv[1]
auth = sys.argv[2] if len(sys.argv) > 2 else None
lock = threading.Lock()
state = json.load(open(state_file)) if os.path.exists(state_file) else {"schemas": {}, "subjects": {}}


def save():
    tmp = state_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, state_file)


def canonical(schema):
    return json.dumps(json.loads(schema), sort_keys=True, separators=(",", ":"))


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorized(self):
        if auth is None:
            return True
        header = self.headers.get("Authorization", "")
        if header == "Basic " + base64.b64encode(auth.encode()).decode():
            return True
        self.reply(401, {"error_code": 401, "message": "Unauthorized"})
        return False

    def do_GET(self):
        if not self.authorized():
            return
        path = urlparse(self.path).path
        with lock:
            m = re.fullmatch(r"/schemas/ids/(\d+)", path)
            if m:
                schema = state["schemas"].get(m.group(1))
                if schema is None:
                    return self.reply(404, {"error_code": 40403, "message": "Schema %s not found" % m.group(1)})
                return self.reply(200, {"schema": schema})
            m = re.fullmatch(r"/subjects/([^/]+)/versions/(latest|\d+)", path)
            if m:
                versions = state["subjects"].get(unquote(m.group(1)), [])
                if not versions:
                    return self.reply(404, {"error_code": 40401, "message": "Subject not found"})
                v = len(versions) if m.group(2) == "latest" else int(m.group(2))
                if v < 1 or v > len(versions):
                    return self.reply(404, {"error_code": 40402, "message": "Version not found"})
                schema_id = versions[v - 1]
                return self.reply(200, {"subject": unquote(m.group(1)), "version": v, "id": schema_id,
                                        "schema": state["schemas"][str(schema_id)]})
        self.reply(404, {"error_code": 404, "message": "not served by the test registry: " + path})

    def do_POST(self):
        if not self.authorized():
            return
        path = urlparse(self.path).path
        m = re.fullmatch(r"/subjects/([^/]+)/versions", path)
        if not m:
            return self.reply(404, {"error_code": 404, "message": "not served by the test registry: " + path})
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        subject = unquote(m.group(1))
        try:
            wanted = canonical(body["schema"])
        except (KeyError, ValueError):
            return self.reply(422, {"error_code": 42201, "message": "Invalid schema"})
        with lock:
            ids = [int(i) for i, s in state["schemas"].items() if canonical(s) == wanted]
            if ids:
                schema_id = ids[0]
            else:
                schema_id = max([int(i) for i in state["schemas"]] + [0]) + 1
                state["schemas"][str(schema_id)] = body["schema"]
            versions = state["subjects"].setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            save()
            self.reply(200, {"id": schema_id, "subject": subject, "version": versions.index(schema_id) + 1,
                             "schema": state["schemas"][str(schema_id)]})


server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("REGISTRY_PORT", "0"))), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
