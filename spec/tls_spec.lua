-- luasip.server over TLS on 127.0.0.1 with a LuaSec peer: certificates made
-- at test time with the openssl command (a test CA, a server certificate for
-- IP:127.0.0.1 and DNS:localhost, a client certificate, and a second CA that
-- signed nothing here), handshakes driven non-blocking while the luasip loop
-- is pumped, verify_client, and the failures the server must survive.
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local N = dofile(here .. "/support/net.lua")
local sip = require "luasip"

local V4 = N.V4

local CONF = [[
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
]]

-- Make the certificates in dir; returns a table of paths.
local function make_pki(dir)
  local f = assert(io.open(dir .. "/openssl.cnf", "w"))
  f:write(CONF)
  f:close()
  local function p(name)
    return "'" .. dir .. "/" .. name .. "'"
  end
  local newkey = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  local function ca(name, cn)
    N.sh(string.format("openssl req -config %s -x509 %s -keyout %s -out %s -days 2 -subj '/CN=%s' -extensions ca_ext",
      p("openssl.cnf"), newkey, p(name .. ".key"), p(name .. ".pem"), cn))
  end
  local function leaf(name, cn, signer, ext)
    N.sh(string.format("openssl req -config %s -new %s -keyout %s -out %s -subj '/CN=%s'",
      p("openssl.cnf"), newkey, p(name .. ".key"), p(name .. ".csr"), cn))
    N.sh(string.format("openssl x509 -req -in %s -CA %s -CAkey %s -CAcreateserial -out %s -days 2 "
      .. "-extfile %s -extensions %s", p(name .. ".csr"), p(signer .. ".pem"), p(signer .. ".key"),
      p(name .. ".pem"), p("openssl.cnf"), ext))
  end
  ca("ca", "luasip test CA")
  ca("other-ca", "luasip other CA")
  leaf("server", "localhost", "ca", "server_ext")
  leaf("client", "luasip test client", "ca", "client_ext")
  leaf("rogue-client", "luasip rogue client", "other-ca", "client_ext")
  local t = {}
  for _, name in ipairs { "ca", "other-ca", "server", "client", "rogue-client" } do
    t[name] = dir .. "/" .. name .. ".pem"
    t[name .. "_key"] = dir .. "/" .. name .. ".key"
  end
  return t
end

describe("TLS server", function()
  local dir, pki

  lazy_setup(function()
    dir = N.tmpdir()
    pki = make_pki(dir)
  end)

  lazy_teardown(function()
    N.cleanup()
    N.rmdir(dir)
  end)

  after_each(N.cleanup)

  -- A TLS server answering 200 and recording each request's source.
  local function tls_server(tls)
    tls = tls or {}
    tls.cert = tls.cert or pki.server
    tls.key = tls.key or pki.server_key
    local srv, l = N.server { listen = { "tls:127.0.0.1:0" }, tls = tls }
    local seen = {}
    srv:on_request(function(req)
      seen[#seen + 1] = req:source()
      req:reply(200)
    end)
    return srv, l, seen
  end

  local function client_params(extra)
    local t = {
      protocol = "any",
      options = { "all", "no_sslv2", "no_sslv3", "no_tlsv1", "no_tlsv1_1" },
      verify = { "peer", "fail_if_no_peer_cert" },
      cafile = pki.ca,
    }
    for k, v in pairs(extra or {}) do
      t[k] = v
    end
    return t
  end

  local function connect(l, params)
    local p = assert(N.tcp(V4, l.port))
    return N.tls_wrap(p, params or client_params())
  end

  it("answers OPTIONS over the same TLS connection, the certificate verified against the test CA", function()
    local srv, l, seen = tls_server()
    assert.are.equal("TLS", l.transport)
    local p = assert(connect(l))
    -- the certificate is the one made for 127.0.0.1
    local cert = assert(p.s:getpeercertificate())
    local san = cert:extensions()["2.5.29.17"]
    assert.are.same({ "127.0.0.1" }, san.iPAddress)
    assert.are.same({ "localhost" }, san.dNSName)
    local verified = p.s:getpeerverification()
    assert.is_true(verified)
    local bytes, cid, branch = N.request { transport = "TLS", via_host = "ua.invalid", rport = true }
    p:send(bytes)
    local r = N.parse(assert(p:read_message(2)))
    assert.are.equal("SIP/2.0 200 OK", r.start)
    assert.are.equal(cid, r:get("Call-ID"))
    assert.are.equal(string.format("SIP/2.0/TLS ua.invalid;branch=%s;rport=%d;received=127.0.0.1", branch, p.port),
      r:get("Via"))
    assert.are.equal(1, #seen)
    assert.are.equal("TLS", seen[1].transport)
    assert.are.equal(p.port, seen[1].port)
    -- a second request on the same connection
    p:send((N.request { transport = "TLS", cseq = 2 }))
    r = N.parse(assert(p:read_message(2)))
    assert.are.equal("2 OPTIONS", r:get("CSeq"))
    assert.are.equal(seen[1].conn_id, seen[2].conn_id)
    local st = srv:stats()
    assert.are.equal(1, st.conn_opened)
    assert.are.equal(0, st.tls_failures)
    assert.are.equal(2, st.rx_msgs)
  end)

  it("works with a TLS 1.2 client", function()
    local _, l = tls_server()
    local p = assert(connect(l, client_params { protocol = "tlsv1_2", options = { "all" } }))
    assert.are.equal("TLSv1.2", p.s:info("protocol"))
    p:send((N.request { transport = "TLS" }))
    assert.are.equal(200, N.parse(assert(p:read_message(2))).status)
  end)

  it("frames a message split over several TLS records and answers a CRLF ping", function()
    local srv, l, seen = tls_server()
    local p = assert(connect(l))
    local msg = N.request { method = "MESSAGE", transport = "TLS", content_type = "text/plain", body = "split body" }
    p:send_split(msg, { 10, 11, 90, #msg - 3 })
    local r = N.parse(assert(p:read_message(2)))
    assert.are.equal("1 MESSAGE", r:get("CSeq"))
    p:send("\r\n\r\n")
    assert.are.equal("\r\n", p:read_bytes(2, 2))
    assert.are.equal(1, srv:stats().keepalives)
    assert.are.equal(1, #seen)
  end)

  it("is refused by a client that trusts another CA", function()
    local srv, l = tls_server()
    local p, err = connect(l, client_params { cafile = pki["other-ca"] })
    assert.is_nil(p)
    assert.is_truthy(tostring(err):find("certificate verify failed", 1, true), tostring(err))
    local st = N.wait_stat(srv, "tls_failures", 1)
    assert.are.equal(1, st.tls_failures)
    assert.are.equal(0, st.rx_msgs)
  end)

  it("drops a plain TCP client on the TLS port and counts a TLS failure", function()
    local srv, l, seen = tls_server()
    local p = assert(N.tcp(V4, l.port))
    p:send((N.request { transport = "TCP" }))
    assert.is_not_nil(p:wait_closed(2), "the server kept the connection")
    assert.is_nil(p.buf:find("SIP/2.0", 1, true), "answered in plain text")
    local st = N.wait_stat(srv, "tls_failures", 1)
    assert.are.equal(1, st.tls_failures)
    assert.are.equal(0, st.rx_msgs)
    assert.are.equal(0, st.connections)
    assert.are.equal(0, #seen)
    -- and keeps serving TLS clients
    local q = assert(connect(l))
    q:send((N.request { transport = "TLS" }))
    assert.are.equal(200, N.parse(assert(q:read_message(2))).status)
  end)

  it("returns nil and a message for a missing certificate or key file", function()
    local missing = dir .. "/no-such-cert.pem"
    local srv, err, name = sip.server { listen = { "tls:127.0.0.1:0" }, tls = { cert = missing, key = pki.server_key } }
    assert.is_nil(srv)
    assert.are.equal("string", type(err))
    assert.is_truthy(err:find(missing, 1, true), err)
    assert.are.equal("string", type(name))
    srv, err = sip.server { listen = { "tls:127.0.0.1:0" }, tls = { cert = pki.server, key = dir .. "/no-key.pem" } }
    assert.is_nil(srv)
    assert.is_truthy(err:find("no-key.pem", 1, true), err)
    -- a key that does not match the certificate
    srv, err = sip.server { listen = { "tls:127.0.0.1:0" }, tls = { cert = pki.server, key = pki.client_key } }
    assert.is_nil(srv)
    assert.are.equal("string", type(err))
    -- a tls: listener without any certificate
    srv, err = sip.server { listen = { "tls:127.0.0.1:0" } }
    assert.is_nil(srv)
    assert.is_truthy(err:find("tls:127.0.0.1:0", 1, true), err)
  end)

  describe("with verify_client", function()
    local function vc_server()
      return tls_server { ca = pki.ca, verify_client = true }
    end

    it("accepts a client certificate signed by the CA", function()
      local srv, l, seen = vc_server()
      local p = assert(connect(l, client_params { certificate = pki.client, key = pki.client_key }))
      p:send((N.request { transport = "TLS" }))
      assert.are.equal(200, N.parse(assert(p:read_message(2))).status)
      assert.are.equal(1, #seen)
      assert.are.equal(0, srv:stats().tls_failures)
    end)

    it("fails the TLS 1.2 handshake of a client without a certificate", function()
      local srv, l, seen = vc_server()
      local p, err = connect(l, client_params { protocol = "tlsv1_2", options = { "all" } })
      assert.is_nil(p, "the handshake succeeded")
      assert.are.equal("string", type(err))
      local st = N.wait_stat(srv, "tls_failures", 1)
      assert.are.equal(1, st.tls_failures)
      assert.are.equal(0, #seen)
    end)

    it("never serves a TLS 1.3 client without a certificate", function()
      -- in TLS 1.3 the client may finish its handshake before the server
      -- rejects it; then the connection is closed without an answer
      local srv, l, seen = vc_server()
      local p = connect(l)
      if p then
        p:send((N.request { transport = "TLS" }))
        local m, why = p:read_message(2)
        assert.is_nil(m, "answered a client without a certificate")
        assert.are_not.equal("timeout", why)
      end
      local st = N.wait_stat(srv, "tls_failures", 1)
      assert.are.equal(1, st.tls_failures)
      assert.are.equal(0, #seen)
    end)

    it("fails the handshake of a client whose certificate another CA signed", function()
      local srv, l, seen = vc_server()
      local p = connect(l, client_params {
        protocol = "tlsv1_2", options = { "all" }, certificate = pki["rogue-client"], key = pki["rogue-client_key"],
      })
      assert.is_nil(p, "the handshake succeeded")
      local st = N.wait_stat(srv, "tls_failures", 1)
      assert.are.equal(1, st.tls_failures)
      assert.are.equal(0, #seen)
    end)
  end)
  describe("as a client (srv:send)", function()
    -- The final response to one OPTIONS to uri from a server whose TLS
    -- client side trusts the test CA.
    local function send_options(uri, client_tls)
      local client = N.server { listen = { "tls:127.0.0.1:0", "udp:127.0.0.1:0" },
        tls = client_tls or { cert = pki.server, key = pki.server_key, ca = pki.ca } }
      local res, err
      sip.spawn(function()
        local req = sip.request { method = "OPTIONS", uri = uri, from = "sip:client@127.0.0.1" }
        res, err = client:send(req)
      end)
      N.pump_until(function() return res or err end, 5)
      return res, err
    end

    it("sends a sips: request over TLS, the server's name checked against its certificate", function()
      local target, l = tls_server()
      local client = N.server { listen = { "tls:127.0.0.1:0" },
        tls = { cert = pki.server, key = pki.server_key, ca = pki.ca } }
      local res
      sip.spawn(function()
        res = client:send(sip.request { method = "OPTIONS", uri = "sips:bob@127.0.0.1:" .. l.port,
          from = "sips:alice@127.0.0.1" })
      end)
      assert.is_truthy(N.pump_until(function() return res end, 5))
      assert.are.equal(200, res.status)
      local st = target:stats()
      assert.are.equal(1, st.rx_msgs)
      assert.are.equal(0, st.tls_failures)
      assert.are.equal(0, client:stats().tls_failures)
    end)

    -- a server configured with no `ca` trusts the system's CA store, which
    -- is read at its first outgoing TLS connection (not when it starts);
    -- OpenSSL's SSL_CERT_FILE points that store at a CA of the test's
    it("without tls.ca, verifies against the system CA store, read at the first connection", function()
      local P = dofile(here .. "/support/proc.lua")
      finally(P.cleanup)
      local _, l = tls_server()
      local script = dir .. "/tls_default_ca.lua"
      local f = assert(io.open(script, "w"))
      f:write(string.format([[
local sip = require "luasip"
return {
  listen = { "tls:127.0.0.1:0" },
  server = { tls = { cert = %q, key = %q } }, -- and no ca
  request = function(req) req:reply(404) end,
  setup = function(ctx)
    sip.timer(0.1, function() -- once it serves
      local res, err = ctx.server:send(sip.request { method = "OPTIONS", uri = "sips:bob@127.0.0.1:%d",
        from = "sips:alice@127.0.0.1" })
      io.stdout:write("status ", tostring(res and res.status or err), "\n")
      io.stdout:flush()
    end)
  end,
}
]], pki.server, pki.server_key, l.port))
      f:close()
      local got = {}
      for _, ca in ipairs { "ca", "other-ca" } do
        local p = P.start({ "run", script }, nil, { SSL_CERT_FILE = pki[ca] })
        N.pump_until(function()
          return p:output():match("status ([^\n]+)") or p:exited()
        end, 10)
        got[ca] = p:output():match("status ([^\n]+)") or p:log()
        p:stop()
      end
      assert.same({ ca = "200", ["other-ca"] = "503" }, got)
    end)

    it("gets 503 when the certificate does not name the target (transport=tls to an address it lacks)", function()
      -- the certificate names 127.0.0.1 and localhost; 127.0.0.2 reaches the
      -- same loopback server but is not in it
      local target = N.server { listen = { "tls:127.0.0.2:0" }, tls = { cert = pki.server, key = pki.server_key } }
      target:on_request(function(req) req:reply(200) end)
      local port = target:listener(0).port
      local client = N.server { listen = { "tls:127.0.0.1:0" },
        tls = { cert = pki.server, key = pki.server_key, ca = pki.ca } }
      local res
      sip.spawn(function()
        res = client:send(sip.request { method = "OPTIONS", uri = "sip:bob@127.0.0.2:" .. port .. ";transport=tls",
          from = "sip:alice@127.0.0.1" })
      end)
      assert.is_truthy(N.pump_until(function() return res end, 5))
      assert.are.equal(503, res.status)
      assert.are.equal(0, target:stats().rx_msgs)
      assert.are.equal(1, client:stats().tls_failures)
    end)

    it("gets 503 when nothing listens, or the server's certificate comes from a CA the client does not trust",
    function()
      local res = send_options("sips:bob@127.0.0.1:1") -- port 1: refused
      assert.are.equal(503, res.status)
      local _, l = tls_server()
      local done
      local client = N.server { listen = { "tls:127.0.0.1:0" },
        tls = { cert = pki.server, key = pki.server_key, ca = pki["other-ca"] } }
      sip.spawn(function()
        done = client:send(sip.request { method = "OPTIONS", uri = "sips:bob@127.0.0.1:" .. l.port,
          from = "sips:alice@127.0.0.1" })
      end)
      assert.is_truthy(N.pump_until(function() return done end, 5))
      assert.are.equal(503, done.status)
      assert.are.equal(1, client:stats().tls_failures)
    end)
  end)
end)
