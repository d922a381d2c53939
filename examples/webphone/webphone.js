// The demo page's logic: one JsSIP UA registered over the WebSocket this
// page came from; call, answer, hang up. window.phone exposes the state to
// the browser test (spec/browser/).
(function () {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const host = location.hostname || '127.0.0.1';
  const wsUrl = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/';
  const phone = window.phone = { registered: false, state: 'idle', events: [], session: null };

  function log(text) {
    phone.events.push(text);
    $('log').textContent += new Date().toISOString().slice(11, 23) + ' ' + text + '\n';
  }
  function setState(s) {
    phone.state = s;
    $('status').textContent = s;
    log('state ' + s);
    $('answer').disabled = s !== 'ringing';
    $('hangup').disabled = !(s === 'ringing' || s === 'calling' || s === 'confirmed');
    $('call').disabled = !phone.registered || s !== 'idle';
  }

  function attach(session) {
    phone.session = session;
    session.on('progress', () => { if (session.direction === 'outgoing') setState('calling'); });
    session.on('confirmed', () => setState('confirmed'));
    session.on('ended', (e) => { log('ended by ' + e.originator); phone.session = null; setState('idle'); phone.ended = (phone.ended || 0) + 1; });
    session.on('failed', (e) => { log('failed: ' + e.cause); phone.session = null; setState('idle'); phone.failed = (phone.failed || 0) + 1; });
    session.on('peerconnection', (e) => {
      e.peerconnection.addEventListener('track', (t) => { $('remote').srcObject = t.streams[0]; });
    });
  }

  phone.register = function (user) {
    const socket = new JsSIP.WebSocketInterface(wsUrl);
    const ua = phone.ua = new JsSIP.UA({
      sockets: [socket],
      uri: 'sip:' + user + '@' + host,
      register: true,
      session_timers: false,
    });
    ua.on('registered', () => { phone.registered = true; log('registered as ' + user); setState(phone.state); });
    ua.on('registrationFailed', (e) => log('registration failed: ' + e.cause));
    ua.on('newRTCSession', (e) => {
      if (e.originator === 'remote') {
        attach(e.session);
        setState('ringing');
      }
    });
    ua.start();
  };
  phone.call = function (target) {
    const session = phone.ua.call('sip:' + target + '@' + host, {
      mediaConstraints: { audio: true, video: false },
      pcConfig: { iceServers: [] },
    });
    attach(session);
    setState('calling');
  };
  phone.answer = function () {
    phone.session.answer({ mediaConstraints: { audio: true, video: false }, pcConfig: { iceServers: [] } });
  };
  phone.hangup = function () { if (phone.session) phone.session.terminate(); };

  $('register').onclick = () => phone.register($('user').value);
  $('call').onclick = () => phone.call($('target').value);
  $('answer').onclick = () => phone.answer();
  $('hangup').onclick = () => phone.hangup();
}());
