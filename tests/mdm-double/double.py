#!/usr/bin/env python3
"""Stateful test doubles of Jamf Pro and Kandji (with its presigned S3 upload) for `confine push`.

Every request is validated against the vendors' own API descriptions in ../shared/mdm-api, read at start
(never copied), with openapi-core; every response the double sends is validated the same way. Classic
XML bodies are converted to JSON guided by the vendor schema named by the root element (the Classic OAS
describes XML documents), then validated. What the vendor descriptions do not declare and the double adds
(error answers, the S3 endpoint, test controls) is labelled an addition in the request log.

usage: double.py jamf|kandji --secret-file FILE
Prints `PORT <n>` once listening on 127.0.0.1 (a free port); exits when stdin closes.

Test controls (not vendor API, under /_double/): GET state, POST faults, POST reset, POST clear-log, POST
checkin (a simulated enrolled Mac checks in and installs what the MDM tells it to).

Vendor behaviours modelled, each with its source (the tests depend on them; a change here is a change
to what confine is tested against):
- Jamf PI-827, per payload type (wire-verified: Jamf-Concepts/jamf-cli PRs #310, #311 and its design note
  classic-profile-payload-ampersand-escaping; jamf/terraform-provider-jamfplatform PR #305): Classic
  entity-decodes <payloads> once more than XML and refuses (409) what then does not parse; payload types
  Jamf re-renders (custom settings, notifications) are stored from that parse, every other type verbatim,
  i.e. parsed from the wire text without the extra decode. `reset {"pi827": "decode-once"}` switches to
  the older reading every payload as decoded once (grahampugh/jamf-upload's template escaping assumes it).
- Jamf Classic policies answer a package by its display name (packageName), not its file name (issue #23,
  from Jamf's Classic answers quoted in deploymenttheory/go-api-sdk-jamfpro classicapi_policies.go).
- Jamf computes a package's hashes only when the cloud distribution point's inventory is refreshed; a
  replaced file keeps the old hashes until then (grahampugh/jamf-upload PRs #170 and #387,
  terraform-provider-jamfpro helpers.go); hashes a client sends are kept as sent until then.
- Jamf "Once per computer" policies: a Mac that ran the policy does not run it again until its log is
  flushed (Jamf Pro documentation of policy frequency; the logflush Classic endpoint).
- Kandji rewrites a custom profile's top-level PayloadIdentifier, PayloadUUID and PayloadDisplayName
  (`mdm_identifier: com.kandji.profile.custom.<id>`), as Kandji's own kandji-inc/iructl test doubles do.
- Kandji install_once installs a custom app once per Mac, never again; continuously_enforce runs the
  audit script at each check-in and installs when it exits non-zero (Kandji's API description of
  install_enforcement; kandji-inc/kpkg's audit-and-enforce). The Mac's `pkgutil --pkg-info` prints as the
  capture ../shared/macos-captures/pkgutil-pkg-info--01.txt (and -missing--01.txt) shows.
- Kandji answers 503 while an upload is processed, whatever its text (kandji-inc/iructl retries any 503).
"""
import argparse, base64, copy, hashlib, html, json, os, plistlib, re, subprocess, sys, tempfile, threading, time, uuid
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, parse_qs, unquote

from openapi_core import OpenAPI, Config
from openapi_core.testing import MockRequest, MockResponse

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "mdm-api")
SHARED = os.environ.get("CONFINE_MDM_API", SHARED)


def load(rel):
    with open(os.path.join(SHARED, rel)) as f:
        return json.load(f)


REF = re.compile(r'"#/components/([^/"]+)/([^"]+)"')


def graft(dst, src, paths, prefix=""):
    """Adds `paths` of vendor description `src` to `dst`, with the components they reference."""
    for p in paths:
        dst["paths"][prefix + p] = copy.deepcopy(src["paths"][p])
    todo = [dst["paths"]]
    while todo:
        for kind, name in REF.findall(json.dumps(todo.pop())):
            bucket = dst.setdefault("components", {}).setdefault(kind, {})
            if name not in bucket:
                bucket[name] = copy.deepcopy(src["components"][kind][name])
                todo.append(bucket[name])


def jamf_descriptions():
    pro = load("derived/jamf-pro-uploader-subset.json")
    graft(pro, load("jamf/jamf-pro-api-schema-11.30.1.json"),
          ["/v1/computer-groups", "/v1/computer-extension-attributes", "/v1/computer-extension-attributes/{id}"],
          prefix="/api")
    classic = load("derived/jamf-classic-uploader-subset.json")
    full = load("jamf/jamf-classic-api-oas-11.20.0.json")
    graft(classic, full, ["/policies/name/{name}", "/policies/id/{id}",
                          "/logflush/{log}/id/{id}/interval/{interval}"], prefix="/JSSResource")
    # The same overlay the shared subset applies to profiles (tools/subset_classic.py): the vendor's own
    # schema, the one its GET answer uses, as the XML request body of POST and PUT.
    for m in ("post", "put"):
        classic["paths"]["/JSSResource/policies/id/{id}"][m]["requestBody"] = {
            "required": True, "x-overlay": True,
            "content": {"application/xml": {"schema": {"$ref": "#/components/schemas/policy"}}}}
    return pro, classic


def kandji_descriptions():
    sub = load("derived/kandji-uploader-subset.json")
    graft(sub, load("derived/kandji-openapi-from-postman.json"),
          ["/api/v1/blueprints", "/api/v1/blueprints/{blueprint_id}/list-library-items"])
    # The conversion put Kandji's saved example answers where OpenAPI 3.1 wants example objects; they
    # are documentation, not schema, and openapi-core refuses the description with them.
    for p in ("/api/v1/blueprints", "/api/v1/blueprints/{blueprint_id}/list-library-items"):
        for op in sub["paths"][p].values():
            for r in op.get("responses", {}).values() if isinstance(op, dict) else []:
                for c in r.get("content", {}).values():
                    c.pop("examples", None)
    # OpenAPI 3.1 spells a file as `contentMediaType`; the conversion kept 3.0's `format: binary`, which
    # no 3.1 validator can satisfy (bytes are not a string, a string is not binary).
    def binary_as_media_type(node):
        if isinstance(node, dict):
            if node.get("type") == "string" and node.get("format") == "binary":
                del node["format"]
                node["contentMediaType"] = "application/octet-stream"
            for v in node.values():
                binary_as_media_type(v)
        elif isinstance(node, list):
            for v in node:
                binary_as_media_type(v)
    binary_as_media_type(sub["paths"])
    return sub


def s3_form_fields():
    """The form fields of Kandji's "Upload to S3" request, from the vendor's Postman collection."""
    coll = load("kandji/kandji_postman_collection-923b4b5.json")

    def walk(items):
        for it in items:
            if "item" in it:
                yield from walk(it["item"])
            else:
                yield it
    for it in walk(coll["item"]):
        if it["name"] == "Upload to S3":
            return [f["key"] for f in it["request"]["body"]["formdata"]]
    raise SystemExit("no Upload to S3 request in the Kandji collection")


# ---------------------------------------------------------------- Classic XML <-> JSON, schema-guided

class XmlConverter:
    """Classic XML to the JSON shape of the vendor schema: the schema named like the root element says
    which elements are lists (wrapper elements), integers and booleans. Text that does not fit a type is
    kept as a string, so the validator reports it."""

    def __init__(self, spec):
        self.schemas = spec["components"]["schemas"]

    def resolve(self, s):
        while isinstance(s, dict) and "$ref" in s:
            s = self.schemas[s["$ref"].split("/")[-1]]
        return s or {}

    def convert(self, el, schema):
        s = self.resolve(schema)
        kids = list(el)
        if s.get("type") == "array":
            item = self.resolve(s.get("items", {}))
            props = item.get("properties", {})
            return [{k.tag: self.convert(k, props.get(k.tag, {}))} if k.tag in props
                    else self.convert(k, item) for k in kids]
        if kids or s.get("type") == "object" or "properties" in s:
            props = s.get("properties", {})
            out = {}
            for k in kids:
                out[k.tag] = self.convert(k, props.get(k.tag, {}))
            return out
        text = el.text or ""
        if s.get("type") == "integer":
            try:
                return int(text)
            except ValueError:
                return text
        if s.get("type") == "boolean" and text in ("true", "false"):
            return text == "true"
        return text

    def deserialize(self, body):
        root = ET.fromstring(body)
        return self.convert(root, self.schemas.get(root.tag, {}))


def to_xml(tag, value):
    el = ET.Element(tag)
    if isinstance(value, dict):
        for k, v in value.items():
            el.append(to_xml(k, v))
    elif isinstance(value, list):
        for item in value:
            for k, v in item.items():
                el.append(to_xml(k, v))
    elif isinstance(value, bool):
        el.text = "true" if value else "false"
    elif value is not None:
        el.text = str(value)
    return el


# ---------------------------------------------------------------- the server

# The vendor descriptions are used as they are, and some do not pass openapi-core's own check of the
# description (Kandji's conversion leaves path parameters undeclared): validate requests and responses
# against them without first validating the description itself.
LENIENT = Config(spec_validator_cls=None)
REJECTED = "request rejected by the vendor description"


class Reply(Exception):
    def __init__(self, status, body=b"", content_type="application/json", addition=None, headers=None):
        self.status, self.body, self.content_type, self.addition = status, body, content_type, addition
        self.headers = headers or {}
        self.delay = 0  # seconds the answer is held back (outside the lock: other requests go on)


def jreply(status, value, addition=None):
    return Reply(status, json.dumps(value).encode(), "application/json", addition)


class Double:
    def __init__(self, vendor, secret):
        self.vendor, self.secret = vendor, secret
        self.lock = threading.RLock()
        if vendor == "jamf":
            pro, classic = jamf_descriptions()
            self.xml = XmlConverter(classic)
            xml_config = Config(spec_validator_cls=None,
                                extra_media_type_deserializers={"application/xml": self.xml.deserialize})
            self.apis = [("/api/", OpenAPI.from_dict(pro, config=LENIENT)),
                         ("/JSSResource/", OpenAPI.from_dict(classic, config=xml_config))]
        else:
            # Kandji's description is OpenAPI 3.1, where a `format: binary` string cannot hold bytes, so
            # openapi-core's own multipart decoding would refuse every file; parts are decoded as text.
            multipart = Config(spec_validator_cls=None,
                               extra_media_type_deserializers={"multipart/form-data": multipart_as_text})
            self.apis = [("/api/", OpenAPI.from_dict(kandji_descriptions(), config=multipart))]
            self.s3_fields = s3_form_fields()
        self.reset()

    def reset(self, options=None):
        o = options or {}
        self.faults = []
        self.log = []
        self.violations = []
        self.counter = 0
        self.next_id = 1
        self.tokens = {}
        self.issued_tokens = set()
        self.hash_lag = o.get("hash_lag", 2)
        self.pi827 = o.get("pi827", "per-type")
        self.files = {}  # package id -> the bytes' hashes Jamf holds for it (what a Mac would install)
        self.mac = {"receipts": {}, "ran": set(), "installed": {}}
        self.packages, self.profiles, self.policies, self.flushes = {}, {}, {}, {}
        self.attributes = {}  # computer extension attributes, by id
        self.groups = [{"id": str(i + 1), "name": n, "smartGroup": False}
                       for i, n in enumerate(o.get("groups", ["AI Agent Macs", "All Managed Clients"]))]
        self.categories = [{"id": str(i + 1), "name": n, "priority": 9}
                           for i, n in enumerate(o.get("categories", ["AI Agents", "Security"]))]
        self.apps, self.kprofiles, self.s3 = {}, {}, {}
        for _ in range(o.get("foreign_packages", 0)):  # other teams' packages, to page past
            ident = self.new_id()
            self.packages[ident] = {"id": ident, "packageName": f"Other {ident}", "fileName": f"other-{ident}.pkg",
                                    "categoryId": "-1", "notes": None, "info": None, "priority": 10,
                                    "fillUserTemplate": False, "rebootRequired": False, "osInstall": False,
                                    "suppressUpdates": False, "suppressFromDock": False, "suppressEula": False,
                                    "suppressRegistration": False, "hashType": None, "hashValue": None}
        self.blueprints = {str(uuid.uuid5(uuid.NAMESPACE_DNS, n)): {"name": n, "items": []}
                           for n in o.get("blueprints", ["AI Agent Macs", "Default"])}
        self.issued = {}

    def new_id(self):
        self.next_id += 1
        return str(self.next_id)

    # -- validation

    def api_for(self, path):
        for prefix, api in self.apis:
            if path.startswith(prefix):
                return api
        return None

    def validate_request(self, req):
        api = self.api_for(req.path)
        if api is None:
            return
        try:
            api.validate_request(req)
        except Exception as e:
            raise jreply(400, {"violation": describe(e)}, addition=REJECTED)

    def validate_response(self, req, reply):
        api = self.api_for(req.path)
        if api is None or reply.addition:
            return
        resp = MockResponse(reply.body, reply.status, content_type=reply.content_type)
        try:
            api.validate_response(req, resp)
        except Exception as e:
            self.violations.append(f"response {reply.status} to {req.method.upper()} {req.path}: {describe(e)}")

    # -- dispatch

    def handle(self, method, raw_path, headers, body):
        parts = urlsplit(raw_path)
        path = parts.path
        query = {k: v[0] if len(v) == 1 else v for k, v in parse_qs(parts.query).items()}
        ctype = headers.get("Content-Type", "")
        # Older Jamf Pro servers only have the unversioned token path; it is the same operation.
        described = "/api/v1/oauth/token" if path == "/api/oauth/token" else path
        req = MockRequest("http://127.0.0.1", method, described, args=query,
                          headers={k: v for k, v in headers.items()},
                          cookies=cookies(headers.get("Cookie", "")), data=body,
                          content_type=ctype.split(";")[0] if ctype else "application/json")
        if ctype.startswith("multipart/"):
            req.content_type = ctype  # openapi-core needs the boundary
        control = path.startswith("/_double/")
        token_call = path.endswith("/oauth/token")
        write = method != "GET" and not control and not token_call
        with self.lock:
            if control:
                reply = self.control(method, path, body)
                return reply
            self.counter += 1
            entry = {"n": self.counter, "method": method, "path": path, "write": write, "at": time.monotonic()}
            if described != path:
                entry["addition"] = f"undeclared older path, validated as {described}"
            try:
                fault = self.fault_for(method, path)
                if fault and not fault.get("apply"):
                    if fault.get("expire_tokens"):
                        self.tokens.clear()
                    raise fault_reply(fault)
                self.validate_request(req)
                self.check_session(path, headers, token_call)
                if self.vendor == "jamf":
                    self.jamf(method, path, query, headers, body, req)
                else:
                    self.kandji(method, path, query, headers, body, req)
                raise Reply(404, b"not found", "text/plain", addition="unknown path")
            except Reply as reply:
                if fault and fault.get("apply") and "status" in fault:
                    reply = fault_reply(fault)
                if fault:
                    reply.delay = fault.get("delay", 0)
                entry["status"] = reply.status
                if reply.addition:
                    entry["addition"] = reply.addition
                if reply.addition == REJECTED:
                    entry["violation"] = json.loads(reply.body)["violation"]
                self.validate_response(req, reply)
                self.log.append(entry)
                return reply

    def fault_for(self, method, path):
        for f in self.faults:
            if f.get("times", 1) <= 0:
                continue
            if "request" in f and f["request"] != self.counter:
                continue
            if "method" in f and f["method"] != method:
                continue
            if "path" in f and not re.search(f["path"], path):
                continue
            f["times"] = f.get("times", 1) - 1
            return f
        return None

    def control(self, method, path, body):
        if path == "/_double/state" and method == "GET":
            state = {"requests": self.log, "violations": self.violations, "tokens": sorted(self.issued_tokens),
                     "writes": sum(1 for e in self.log if e["write"]),
                     "packages": self.packages, "profiles": {k: {kk: vv for kk, vv in v.items() if kk != "doc"}
                                                             for k, v in self.profiles.items()},
                     "policies": self.policies, "flushes": self.flushes, "attributes": self.attributes, "apps": self.apps, "kprofiles": self.kprofiles,
                     "blueprints": self.blueprints, "receipts": self.mac["receipts"],
                     "installs": self.mac.get("installs", 0)}
            return jreply(200, state)
        if path == "/_double/faults" and method == "POST":
            self.faults = json.loads(body or b"[]")
            return jreply(200, {"ok": True})
        if path == "/_double/reset" and method == "POST":
            self.reset(json.loads(body or b"{}"))
            return jreply(200, {"ok": True})
        if path == "/_double/checkin" and method == "POST":
            self.checkin(json.loads(body or b"{}"))
            return jreply(200, {"receipts": self.mac["receipts"],
                     "installs": self.mac.get("installs", 0)})
        if path == "/_double/clear-log" and method == "POST":
            self.log = []
            return jreply(200, {"ok": True})
        return jreply(404, {"error": "unknown control"})

    def checkin(self, o):
        """The simulated enrolled Mac checks in. `versions` maps a package file's SHA-256 to the version
        its receipt records (the test knows its builds; the double does not read packages)."""
        versions, package_id = o.get("versions", {}), o.get("package_id")
        def install(sha256):
            self.mac["receipts"][package_id] = versions.get(sha256, "unknown")
            self.mac["installs"] = self.mac.get("installs", 0) + 1
        if self.vendor == "jamf":
            for pid, policy in self.policies.items():
                general = policy.get("general", {})
                if not general.get("enabled") or pid in self.mac["ran"]:
                    continue
                for p in policy.get("package_configuration", {}).get("packages", []) or []:
                    held = self.packages.get(str(p.get("package", {}).get("id")), {}).get("held")
                    if held:
                        install(held)
                if general.get("frequency") == "Once per computer":
                    self.mac["ran"].add(pid)
            return
        for bp in self.blueprints.values():
            for item in bp["items"]:
                app = self.apps.get(item)
                if not app or not app.get("active"):
                    continue
                enforcement = app.get("install_enforcement")
                if enforcement == "install_once" and item in self.mac["installed"]:
                    continue
                if enforcement == "continuously_enforce" and self.audit_passes(app.get("audit_script", ""), package_id):
                    continue
                install(app["sha256"])
                self.mac["installed"][item] = app["sha256"]

    def audit_passes(self, script, package_id):
        """Runs a custom app's audit script as Kandji's agent would (exit 0: installed as wanted), with a
        `pkgutil` that answers `--pkg-info` as the captures show."""
        with tempfile.TemporaryDirectory() as bin_dir:
            receipt = self.mac["receipts"].get(package_id)
            fake = os.path.join(bin_dir, "pkgutil")
            with open(fake, "w") as f:
                # ../shared/macos-captures/pkgutil-pkg-info--01.txt and pkgutil-pkg-info-missing--01.txt
                f.write("#!/bin/sh\n"
                        "id=${1#--pkg-info=}; [ \"$id\" = --pkg-info ] && id=$2\n"
                        f"if [ \"$id\" = '{package_id}' ] && [ -n '{receipt or ''}' ]; then\n"
                        f"  printf 'package-id: %s\\nversion: %s\\nvolume: /\\nlocation: /\\ninstall-time: 1688011857\\n' \"$id\" '{receipt}'; exit 0\n"
                        "fi\n"
                        "printf \"No receipt for '%s' found at '/'.\\n\" \"$id\" >&2; exit 1\n")
            os.chmod(fake, 0o755)
            env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
            result = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, timeout=30)
            return result.returncode == 0

    def check_session(self, path, headers, token_call):
        if self.vendor == "jamf":
            if not token_call and "APBALANCEID=" not in headers.get("Cookie", ""):
                self.violations.append(f"{path}: no APBALANCEID cookie (Jamf Cloud sticky session)")
            if not token_call:
                auth = headers.get("Authorization", "")
                if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
                    raise jreply(401, {"httpStatus": 401, "errors": [{"code": "INVALID_TOKEN", "description": "Unauthorized"}]},
                                 addition="401 is not declared by the vendor description")
        elif not path.startswith("/_s3/"):
            if headers.get("Authorization", "") != f"Bearer {self.secret}":
                raise jreply(401, {"detail": "Authentication credentials were not provided."},
                             addition="401 is not declared by the vendor description")

    # -- Jamf Pro and Classic

    def jamf(self, method, path, query, headers, body, req):
        if path in ("/api/v1/oauth/token", "/api/oauth/token") and method == "POST":
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            if form.get("grant_type") != "client_credentials" or form.get("client_id") != "jamf-client" \
                    or form.get("client_secret") != self.secret:
                raise jreply(400, {"error": "invalid_client", "error_description": "bad client"})
            token = base64.urlsafe_b64encode(os.urandom(24)).decode()
            self.tokens[token] = True
            self.issued_tokens.add(token)
            answer = {"access_token": token, "token_type": "Bearer", "scope": "api-role:1",
                      "expires_in": self.token_ttl()}
            if answer["expires_in"] == "missing":  # a hostile or broken server
                del answer["expires_in"]
            raise jreply(200, answer)
        if path == "/api/v1/computer-groups" and method == "GET":
            raise jreply(200, self.groups)
        if path == "/api/v1/categories" and method == "GET":
            page, size = int(query.get("page", 0)), int(query.get("page-size", 100))
            raise jreply(200, {"totalCount": len(self.categories),
                               "results": self.categories[page * size:(page + 1) * size]})
        if path == "/api/v1/packages" and method == "GET":
            page, size = int(query.get("page", 0)), int(query.get("page-size", 100))
            items = [self.package_view(p) for p in sorted(self.packages.values(), key=lambda p: int(p["id"]))]
            raise jreply(200, {"totalCount": len(items), "results": items[page * size:(page + 1) * size]})
        if path == "/api/v1/packages" and method == "POST":
            record = json.loads(body)
            if any(p["packageName"] == record["packageName"] for p in self.packages.values()):
                raise jreply(400, {"httpStatus": 400, "errors": [{"code": "DUPLICATE_FIELD", "field": "packageName",
                                                                  "description": "duplicate name", "id": "0"}]},
                             addition="DUPLICATE_FIELD 400 is not declared by the vendor description")
            record["id"] = self.new_id()
            # Hashes a client sends stay as sent until the inventory is refreshed; the file's are unknown.
            record.setdefault("hashType", None)
            record.setdefault("hashValue", None)
            record.setdefault("md5", None)
            record.update({"sha3512": None, "sha256": None})
            self.packages[record["id"]] = record
            raise jreply(201, {"id": record["id"], "href": f"/api/v1/packages/{record['id']}"})
        m = re.fullmatch(r"/api/v1/packages/([^/]+)", path)
        if m:
            record = self.packages.get(m.group(1))
            if record is None:
                raise jreply(404, {"httpStatus": 404, "errors": [{"code": "NOT_FOUND", "description": "no package"}]})
            if method == "GET":
                if record.get("lag", 0) > 0:
                    record["lag"] -= 1
                raise jreply(200, self.package_view(record))
            if method == "PUT":
                update = json.loads(body)
                record.update({k: v for k, v in update.items() if k not in ("id", "sha3512", "sha256", "size")})
                raise jreply(200, self.package_view(record))
        m = re.fullmatch(r"/api/v1/packages/([^/]+)/upload", path)
        if m and method == "POST":
            record = self.packages.get(m.group(1))
            if record is None:
                raise jreply(404, {"httpStatus": 404, "errors": [{"code": "NOT_FOUND", "description": "no package"}]})
            name, data = multipart_file(headers, body, "file")
            if name != record["fileName"]:
                raise jreply(400, {"httpStatus": 400, "errors": [{"code": "INVALID_FILE_NAME",
                             "description": "The filename does not correspond to the filename linked to the package ID"}]},
                             addition="INVALID_FILE_NAME 400 is not declared by the vendor description")
            # Vendor behaviour: Jamf computes the hashes only when the inventory is refreshed; until then
            # the record keeps its old ones.
            self.files[record["id"]] = {"sha3512": hashlib.sha3_512(data).hexdigest(),
                                        "sha256": hashlib.sha256(data).hexdigest(),
                                        "md5": hashlib.md5(data).hexdigest(), "size": len(data)}
            raise jreply(201, {"id": record["id"], "href": f"/api/v1/packages/{record['id']}"})
        if path.startswith("/api/v1/computer-extension-attributes"):
            self.extension_attributes(method, path, query, body)
        if path == "/api/v1/cloud-distribution-point/refresh-inventory" and method == "POST":
            for record in self.packages.values():
                if record["fileName"] == query.get("file-name") and record["id"] in self.files:
                    record["pending"] = self.files[record["id"]]
                    record["lag"] = self.hash_lag
            raise Reply(204, b"", "application/json")
        if path.startswith("/JSSResource/"):
            self.classic(method, path, body)

    def extension_attributes(self, method, path, query, body):
        """`/api/v1/computer-extension-attributes`: names are unique (400 Duplicate_Field, declared); a record
        holds every field of `ComputerExtensionAttributes`, the defaults the description gives filled in."""
        if path == "/api/v1/computer-extension-attributes" and method == "GET":
            page, size = int(query.get("page", 0)), int(query.get("page-size", 100))
            items = sorted(self.attributes.values(), key=lambda a: a["name"])
            raise jreply(200, {"totalCount": len(items), "results": items[page * size:(page + 1) * size]})
        m = re.fullmatch(r"/api/v1/computer-extension-attributes(?:/([^/]+))?", path)
        if not m:
            return
        if method in ("POST", "PUT"):
            record = json.loads(body)
            ident = m.group(1) if method == "PUT" else self.new_id()
            if method == "PUT" and ident not in self.attributes:
                raise jreply(404, {"httpStatus": 404, "errors": [{"code": "NOT_FOUND", "description": "no attribute"}]})
            if any(a["name"] == record["name"] and a["id"] != ident for a in self.attributes.values()):
                raise jreply(400, {"httpStatus": 400, "errors": [{"code": "DUPLICATE_FIELD", "field": "name",
                                                                  "description": "Duplicate_Field", "id": "0"}]})
            stored = {"enabled": True, "inventoryDisplayType": "GENERAL", "inputType": "TEXT",
                      "dataType": "STRING", "description": "", "scriptContents": None,
                      "popupMenuChoices": [], "ldapAttributeMapping": "", "ldapExtensionAttributeAllowed": False}
            stored.update(record)
            stored["id"] = ident
            self.attributes[ident] = stored
            if method == "POST":
                raise jreply(201, {"id": ident, "href": f"/api/v1/computer-extension-attributes/{ident}"})
            raise jreply(202, stored)
        if method == "GET" and m.group(1):
            if m.group(1) not in self.attributes:
                raise jreply(404, {"httpStatus": 404, "errors": [{"code": "NOT_FOUND", "description": "no attribute"}]})
            raise jreply(200, self.attributes[m.group(1)])

    def token_ttl(self):
        for f in self.faults:
            if "token_ttl" in f:
                return f["token_ttl"]
        return 1800

    def package_view(self, record):
        if "pending" in record and record.get("lag", 0) <= 0:
            pending = record.pop("pending")
            record.update({"hashType": "SHA3_512", "hashValue": pending["sha3512"], "sha3512": pending["sha3512"],
                           "sha256": pending["sha256"], "md5": pending["md5"], "size": str(pending["size"])})
            record["held"] = pending["sha256"]
        return {k: v for k, v in record.items() if k not in ("pending", "lag", "held")}

    def classic(self, method, path, body):
        m = re.fullmatch(r"/JSSResource/logflush/policy/id/([^/]+)/interval/Zero\+Days", path)
        if m and method == "DELETE":
            if m.group(1) not in self.policies:
                raise Reply(404, b"<html><p>Not found</p></html>", "text/html", addition="404 is not declared")
            self.flushes[m.group(1)] = self.flushes.get(m.group(1), 0) + 1
            self.mac["ran"].discard(m.group(1))
            raise Reply(200, b"", "text/plain")
        m = re.fullmatch(r"/JSSResource/(osxconfigurationprofiles|policies)/(name|id)/([^/]+)", path)
        if not m:
            return
        kind, by, key = m.group(1), m.group(2), unquote(m.group(3))
        store = self.profiles if kind == "osxconfigurationprofiles" else self.policies
        root = "os_x_configuration_profile" if kind == "osxconfigurationprofiles" else "policy"
        if method == "GET":
            found = [d for i, d in store.items() if (d["general"]["name"] == key if by == "name" else i == key)]
            if not found:
                raise Reply(404, b"<html><body><p>The server has not found anything matching the request URI</p></body></html>",
                            "text/html", addition="404 is not declared by the vendor description")
            doc = found[0]
            if kind == "policies":
                # Vendor behaviour: a policy answers its packages by display name, not file name.
                doc = copy.deepcopy(doc)
                for p in doc.get("package_configuration", {}).get("packages", []) or []:
                    pkg = p.get("package", {})
                    record = self.packages.get(str(pkg.get("id")))
                    if record:
                        pkg["name"] = record["packageName"]
            raise Reply(200, ET.tostring(to_xml(root, doc)), "application/xml")
        if method in ("POST", "PUT") and by == "id":
            doc = self.xml.deserialize(body)
            name = doc["general"]["name"]
            if method == "POST":
                if any(d["general"]["name"] == name for d in store.values()):
                    raise conflict("Duplicate name")
                ident = self.new_id()
            else:
                ident = key
                if ident not in store:
                    raise Reply(404, b"<html><p>Not found</p></html>", "text/html", addition="404 is not declared")
            if kind == "osxconfigurationprofiles":
                held = store[ident]["general"]["payloads"] if method == "PUT" else None
                doc["general"]["payloads"] = self.jamf_ingest(doc["general"].get("payloads", ""), held)
            else:
                self.check_policy(doc)
            self.check_scope(doc)
            doc["general"]["id"] = int(ident)
            store[ident] = doc
            raise Reply(201, ET.tostring(to_xml(root, {"id": int(ident)})), "application/xml",
                        addition="Classic POST/PUT declare 201 without a body; Jamf answers <id>")

    def jamf_ingest(self, payloads, held=None):
        # PI-827: the Classic API entity-decodes <payloads> once more than XML does, and refuses what then
        # does not parse.
        decoded = html.unescape(payloads)
        try:
            plist = plistlib.loads(decoded.encode())
        except Exception:
            raise conflict("Unable to update the database")
        if self.pi827 == "per-type":
            plist = self.stored_per_type(plist, payloads)
        if held is not None:
            # An update that changes the identity Jamf gave the profile installs a second ("ghost")
            # profile on the Macs beside the first.
            old = plistlib.loads(held.encode())
            for key in ("PayloadUUID", "PayloadIdentifier"):
                if plist.get(key) != old.get(key):
                    self.violations.append(f"profile update changed {key} (ghost profile): {old.get(key)} -> {plist.get(key)}")
            return self.rewrite_kept(plist, old)
        return self.rewrite(plist)

    RE_RENDERED = ("com.apple.ManagedClient.preferences", "com.apple.notificationsettings")

    def stored_per_type(self, decoded, wire):
        """PI-827 per payload type: re-rendered types as decoded, every other type verbatim (the wire
        text parsed without the extra decode, so an entity arrives as text)."""
        try:
            verbatim = plistlib.loads(wire.encode())
        except Exception:
            return decoded
        items, raw = decoded.get("PayloadContent"), verbatim.get("PayloadContent")
        if isinstance(items, list) and isinstance(raw, list) and len(items) == len(raw):
            decoded["PayloadContent"] = [d if isinstance(d, dict) and d.get("PayloadType") in self.RE_RENDERED else r
                                         for d, r in zip(items, raw)]
        return decoded

    def rewrite_kept(self, plist, old):
        new = plistlib.loads(self.rewrite(plist).encode())
        new["PayloadUUID"], new["PayloadIdentifier"] = old["PayloadUUID"], old["PayloadIdentifier"]
        return plistlib.dumps(new, sort_keys=True).decode()

    def rewrite(self, plist):
        # What Jamf does to a stored profile: new UUIDs everywhere, a new top-level PayloadIdentifier,
        # injected keys, trimmed strings, and its own indentation.
        def rewrite(v, top=False):
            if isinstance(v, dict):
                out = {k: rewrite(x) for k, x in v.items()}
                if "PayloadUUID" in out:
                    out["PayloadUUID"] = str(uuid.uuid4()).upper()
                if "PayloadType" in out and not top:
                    out.setdefault("PayloadEnabled", True)
                return out
            if isinstance(v, list):
                return [rewrite(x) for x in v]
            if isinstance(v, str):
                return v.strip()
            return v
        plist = rewrite(plist, top=True)
        plist["PayloadIdentifier"] = plist.setdefault("PayloadUUID", str(uuid.uuid4()).upper())
        plist.setdefault("PayloadScope", "System")
        plist.setdefault("PayloadOrganization", "Jamf")
        return plistlib.dumps(plist, sort_keys=True).decode()

    def check_scope(self, doc):
        for g in doc.get("scope", {}).get("computer_groups", []) or []:
            group = g.get("computer_group", {})
            if not any(x["name"] == group.get("name") and x["id"] == str(group.get("id")) for x in self.groups):
                raise conflict(f"Problem with computer group {group}")
        cat = doc.get("general", {}).get("category")
        if cat and not any(c["name"] == cat.get("name") for c in self.categories):
            raise conflict("Problem with category")

    def check_policy(self, doc):
        for p in doc.get("package_configuration", {}).get("packages", []) or []:
            if str(p.get("package", {}).get("id")) not in self.packages:
                raise conflict("Problem with package")

    # -- Kandji and S3

    def kandji(self, method, path, query, headers, body, req):
        if path == "/api/v1/blueprints" and method == "GET":
            raise jreply(200, self.page(path, query, [{"id": i, "name": b["name"]} for i, b in self.blueprints.items()]),
                         addition="the vendor description declares this answer as a string (a conversion gap); the double sends Kandji's paged list")
        m = re.fullmatch(r"/api/v1/blueprints/([^/]+)/(list-library-items|assign-library-item)", path)
        if m:
            bp = self.blueprints.get(m.group(1))
            if bp is None:
                raise jreply(404, {"detail": "Not found."}, addition="404 is not declared")
            if m.group(2) == "list-library-items" and method == "GET":
                items = [{"id": i, "name": (self.apps.get(i) or self.kprofiles.get(i))["name"]} for i in bp["items"]]
                raise jreply(200, self.page(path, query, items), addition="the vendor description declares this answer as a string (a conversion gap)")
            if m.group(2) == "assign-library-item" and method == "POST":
                item = json.loads(body).get("library_item_id")
                if item not in self.apps and item not in self.kprofiles:
                    raise jreply(400, ["Library Item does not exist"], addition="400 is not declared")
                if item in bp["items"]:
                    raise jreply(400, ["Library Item already exists on Blueprint"], addition="400 is not declared")
                bp["items"].append(item)
                raise jreply(200, bp["items"])
        if path == "/api/v1/library/custom-apps/upload" and method == "POST":
            name = json.loads(body)["name"]
            stem, ext = os.path.splitext(name)
            key = f"companies/companies/{uuid.uuid4()}/library/custom_apps/{stem}_{os.urandom(4).hex()}{ext}"
            post_data = {"key": key, "x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-credential": "AKIA/s3/aws4_request",
                         "x-amz-date": "20261129T000000Z", "x-amz-security-token": os.urandom(8).hex(),
                         "policy": base64.b64encode(key.encode()).decode(), "x-amz-signature": os.urandom(16).hex()}
            self.issued[key] = post_data
            raise jreply(201, {"name": name, "expires": "2026-11-29T01:00:00Z", "file_key": key,
                               "post_url": f"http://127.0.0.1:{self.s3_port}/_s3/bucket", "post_data": post_data})
        if path == "/_s3/bucket" and method == "POST":
            self.s3_upload(headers, body)
        if path == "/api/v1/library/custom-apps" and method == "GET":
            raise jreply(200, self.page(path, query, list(self.apps.values())))
        if path == "/api/v1/library/custom-apps" and method == "POST":
            form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
            app = {"id": str(uuid.uuid4()), "created_at": "2026-11-29T00:00:00Z"}
            self.apply_app(app, form, require_file=True)
            self.apps[app["id"]] = app
            raise jreply(201, app)
        m = re.fullmatch(r"/api/v1/library/custom-apps/([^/]+)", path)
        if m and method == "PATCH":
            app = found(self.apps, m.group(1))
            form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
            self.apply_app(app, form, require_file=False)
            raise jreply(200, app)
        if path == "/api/v1/library/custom-profiles" and method == "GET":
            raise jreply(200, self.page(path, query, list(self.kprofiles.values())))
        if path == "/api/v1/library/custom-profiles" and method == "POST":
            profile = {"id": str(uuid.uuid4()), "created_at": "2026-11-29T00:00:00Z"}
            self.apply_profile(profile, headers, body, require_file=True)
            self.kprofiles[profile["id"]] = profile
            raise jreply(201, profile)
        m = re.fullmatch(r"/api/v1/library/custom-profiles/([^/]+)", path)
        if m and method == "PATCH":
            profile = found(self.kprofiles, m.group(1))
            self.apply_profile(profile, headers, body, require_file=False)
            raise jreply(200, profile)

    def page(self, path, query, results, size=5):
        """Kandji's paged list: `size` results, `next` and `previous` as absolute URLs."""
        n = int(query.get("page", 1))
        link = lambda k: f"http://127.0.0.1:{self.port}{path}?page={k}"
        return {"count": len(results), "results": results[(n - 1) * size:n * size],
                "next": link(n + 1) if n * size < len(results) else None,
                "previous": link(n - 1) if n > 1 else None}

    def s3_upload(self, headers, body):
        if "Authorization" in headers:
            self.violations.append("the S3 upload carried an Authorization header")
        if "Cookie" in headers:
            self.violations.append(f"the S3 upload carried the tenant's cookies: {headers['Cookie']}")
        fields, order = multipart_fields(headers, body)
        if order[-1:] != ["file"] or sorted(order[:-1]) != sorted(k for k in self.s3_fields if k != "file"):
            raise Reply(400, b"<Error><Code>InvalidArgument</Code></Error>", "application/xml",
                        addition=f"S3 rejects the form: fields {order}, the collection's Upload to S3 sends {self.s3_fields}")
        issued = self.issued.get(fields.get("key", b"").decode())
        if issued is None or any(fields[k].decode() != v for k, v in issued.items()):
            raise Reply(403, b"<Error><Code>AccessDenied</Code></Error>", "application/xml", addition="S3 policy mismatch")
        data = fields["file"]
        self.s3[issued["key"]] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        raise Reply(204, b"", "text/plain", addition="S3 presigned POST (the collection's Upload to S3 request)")

    def apply_app(self, app, form, require_file):
        key = form.get("file_key")
        if require_file or key:
            if key not in self.s3:
                raise jreply(400, {"file_key": ["No uploaded file for this key."]}, addition="400 is not declared")
            app.update({"file_key": key, "file_size": self.s3[key]["size"], "sha256": self.s3[key]["sha256"],
                        "file_url": "https://s3.example/" + key, "file_updated": "2026-11-29T00:00:00Z"})
        b = lambda k, d: form.get(k, d) in ("true", True)
        app.update({"name": form.get("name", app.get("name")),
                    "install_type": form.get("install_type", app.get("install_type", "package")),
                    "install_enforcement": form.get("install_enforcement", app.get("install_enforcement")),
                    "audit_script": form.get("audit_script", app.get("audit_script", "")),
                    "unzip_location": "", "preinstall_script": "", "postinstall_script": "",
                    "active": b("active", "true"), "restart": b("restart", "false"),
                    "show_in_self_service": b("show_in_self_service", "false"),
                    "self_service_category_id": "", "self_service_recommended": False,
                    "updated_at": "2026-11-29T00:00:01Z"})

    def apply_profile(self, profile, headers, body, require_file):
        fields, _ = multipart_fields(headers, body)
        if "file" in fields:
            try:
                plist = plistlib.loads(fields["file"])
            except Exception:
                raise jreply(400, {"file": ["Not a valid configuration profile."]}, addition="400 is not declared")
            # Vendor behaviour: Kandji rewrites the top-level identity of a custom profile (as Kandji's
            # iructl test doubles model) and hands back its own serialisation, not the bytes it was sent.
            plist["PayloadIdentifier"] = f"com.kandji.profile.custom.{profile['id']}"
            plist["PayloadUUID"] = str(uuid.uuid5(uuid.NAMESPACE_URL, profile["id"])).upper()
            plist["PayloadDisplayName"] = fields.get("name", profile.get("name", "").encode()).decode()
            profile["profile"] = plistlib.dumps(plist, sort_keys=True).decode()
        elif require_file:
            raise jreply(400, {"file": ["This field is required."]}, addition="400 is not declared")
        t = lambda k, d: fields.get(k, d.encode()).decode() == "true"
        profile.update({"name": fields.get("name", profile.get("name", "").encode()).decode(),
                        "active": t("active", "true"), "mdm_identifier": f"com.kandji.profile.custom.{profile['id']}",
                        "runs_on_mac": t("runs_on_mac", "false"), "runs_on_iphone": False, "runs_on_ipad": False,
                        "runs_on_tv": False, "runs_on_vision": False, "updated_at": "2026-11-29T00:00:01Z"})


def found(store, key):
    if key not in store:
        raise jreply(404, {"detail": "Not found."}, addition="404 is not declared")
    return store[key]




def conflict(message):
    return Reply(409, f"<html><body><p>Error: {message}</p></body></html>".encode(), "text/html",
                 addition="Classic 409 is not declared by the vendor description")


def fault_reply(f):
    body = f.get("body", "")
    headers = {"Retry-After": str(f["retry_after"])} if "retry_after" in f else {}
    return Reply(f["status"], body.encode() if isinstance(body, str) else json.dumps(body).encode(),
                 f.get("content_type", "application/json"), addition="injected fault", headers=headers)


def describe(e):
    cause = e.__cause__ or e
    errors = getattr(cause, "schema_errors", None)
    return f"{type(e).__name__}: " + ("; ".join(x.message for x in errors) if errors else str(cause))


def cookies(header):
    out = {}
    for part in header.split(";"):
        if "=" in part:
            k, v = part.strip().split("=", 1)
            out[k] = v
    return out


def multipart_fields(headers, body):
    boundary = re.search(r"boundary=([^;]+)", headers.get("Content-Type", "")).group(1).strip('"')
    fields, order = {}, []
    for part in body.split(b"--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part[2:].partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]*)"', head).group(1).decode()
        fields[name] = data[:-2]
        m = re.search(rb'filename="([^"]*)"', head)
        if m:
            fields["__filename__" + name] = m.group(1)
        order.append(name)
    return fields, order


def multipart_as_text(body, **parameters):
    boundary = body.split(b"\r\n", 1)[0][2:].decode()
    fields, _ = multipart_fields({"Content-Type": f"multipart/form-data; boundary={boundary}"}, body)
    return {k: v.decode("utf-8", "replace") for k, v in fields.items() if not k.startswith("__filename__")}


def multipart_file(headers, body, field):
    fields, _ = multipart_fields(headers, body)
    return fields.get("__filename__" + field, b"").decode(), fields.get(field, b"")


def serve(double):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def run(self):
            length = int(self.headers.get("Content-Length", 0))
            if self.headers.get("Transfer-Encoding"):
                double.violations.append(f"{self.path}: chunked request body (confine sends Content-Length)")
            body = self.rfile.read(length) if length else b""
            try:
                reply = double.handle(self.command, self.path, self.headers, body)
            except Exception as e:  # a bug in the double: say so, loudly, in the state
                double.violations.append(f"the double failed on {self.command} {self.path}: {e!r}")
                reply = Reply(500, repr(e).encode(), "text/plain", addition="double bug")
            time.sleep(reply.delay)
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for k, v in reply.headers.items():
                self.send_header(k, v)
            if double.vendor == "jamf":
                self.send_header("Set-Cookie", "APBALANCEID=aws.usw2.node7; path=/; HttpOnly; Secure")
            elif not self.path.startswith("/_s3/"):
                # A load balancer's stickiness cookie on Kandji's API (issue #23 reports Kandji cookies;
                # the cookie's name is a guess): it must never reach the S3 upload host.
                self.send_header("Set-Cookie", "AWSALB=kandji-node-3; Path=/")
            self.end_headers()
            self.wfile.write(reply.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = run

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass  # a client closing a kept-alive connection is not news

    return Server(("127.0.0.1", 0), Handler)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("vendor", choices=["jamf", "kandji"])
    ap.add_argument("--secret-file", required=True)
    args = ap.parse_args()
    with open(args.secret_file) as f:
        secret = f.read().strip()
    double = Double(args.vendor, secret)
    server = serve(double)
    double.port = server.server_address[1]
    # Kandji's presigned uploads go to another origin (S3), as on a real tenant.
    s3 = serve(double)
    double.s3_port = s3.server_address[1]
    for srv in (server, s3):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    print(f"PORT {double.port}", flush=True)
    sys.stdin.read()  # until the test closes our stdin


if __name__ == "__main__":
    main()
