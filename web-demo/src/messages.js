// What went wrong, in words a person understands, with what to do about it.
//
// Every failure the page can meet ends up here: the WebSocket to Wedge (certificate
// not trusted, nothing listening, refused), a SIP response to REGISTER or INVITE
// (401/403/404/408/480/486/487/488/503/603 ...), and the microphone. When the server
// explained itself in a Warning header (the demo PBX does), its words are added.

/** The SIP status and texts of a JsSIP failure event ({response} or {message}). */
export function sipFailure(event) {
  const response = event.response || event.message || null;
  const status = response && response.status_code ? response.status_code : null;
  const reason = response && response.reason_phrase ? response.reason_phrase : null;
  let warning = null;
  if (response && typeof response.getHeader === 'function') {
    const value = response.getHeader('Warning');
    const match = value && /^\s*\d{3}\s+\S+\s+"((?:[^"\\]|\\.)*)"/.exec(value);
    if (match) warning = match[1].replace(/\\(.)/g, '$1');
  }
  return { status, reason, warning, cause: event.cause || null };
}

function withWarning(text, failure) {
  const warning = failure.warning;
  if (!warning || text.toLowerCase().includes(warning.toLowerCase())) return text;
  return `${text}\nThe PBX says: “${warning}”.`;
}

function code(failure) {
  return failure.status ? ` (${failure.status}${failure.reason ? ' ' + failure.reason : ''})` : '';
}

/** Why a REGISTER failed. */
export function registrationProblem(failure, name) {
  const { status, reason, cause } = failure;
  if (status === 401 || status === 407 || cause === 'Authentication Error') {
    return withWarning(
      `The password for ${name} was not accepted${code(failure)}. ` +
        'Check it (it is in the users file the demo was started with).',
      failure,
    );
  }
  if (status === 403) {
    if (reason === 'Name In Use') {
      return `The name ${name} is already in use by another browser or tab${code(failure)}. ` +
        'Pick another name, or unregister there first.';
    }
    if (reason === 'Wrong Password') {
      return withWarning(
        `Wrong password for ${name}${code(failure)}. ` +
          'Check it (it is in the users file the demo was started with).',
        failure,
      );
    }
    return withWarning(`The PBX refused to register ${name}${code(failure)}.`, failure);
  }
  if (status === 404) {
    return withWarning(
      `There is no user called ${name} on this PBX${code(failure)}. ` +
        'Use a name from the users file the demo was started with.',
      failure,
    );
  }
  if (status === 408 || cause === 'Request Timeout') {
    return 'Registering timed out: Wedge or the PBX behind it did not answer in time (408). Is the demo still running?';
  }
  if (status === 503) {
    return withWarning(
      `Service unavailable${code(failure)}: Wedge could not reach the PBX. Is the demo still running?`,
      failure,
    );
  }
  if (cause === 'Connection Error') {
    return 'The connection to Wedge was lost while registering.';
  }
  return withWarning(`Registration failed${code(failure)}${status ? '' : ': ' + (cause || 'unknown error')}.`, failure);
}

/** Why a call failed or could not start. ``target`` is what the user dialled. */
export function callProblem(failure, target) {
  const { status, cause } = failure;
  if (status === 404 || cause === 'Not Found') {
    return withWarning(
      `${target} was not found${code(failure)}: nobody is registered under that name and ` +
        'there is no such extension. Try 600, 601, 602 or the name of someone registered.',
      failure,
    );
  }
  if (status === 486 || status === 600 || cause === 'Busy') {
    return withWarning(`${target} is busy${code(failure)}.`, failure);
  }
  if (status === 603 || (cause === 'Rejected' && status !== 403)) {
    return withWarning(`${target} declined the call${code(failure)}.`, failure);
  }
  if (status === 480 || status === 410 || status === 430 || cause === 'Unavailable') {
    return withWarning(`${target} is not available right now${code(failure)}.`, failure);
  }
  if (status === 487 || cause === 'Canceled') return 'Call cancelled.';
  if (status === 408 || cause === 'Request Timeout' || cause === 'No Answer') {
    return withWarning(`No answer from ${target}${code(failure)}.`, failure);
  }
  if (status === 488 || status === 606 || cause === 'Incompatible SDP') {
    return withWarning(
      `The call's audio could not be agreed on${code(failure)}: the other side supports none of the browser's codecs.`,
      failure,
    );
  }
  if (status === 403) {
    return withWarning(`The PBX refused the call${code(failure)}.`, failure);
  }
  if (status === 401 || status === 407 || cause === 'Authentication Error') {
    return `The PBX did not accept your password for this call${code(failure)}.`;
  }
  if (status === 503) {
    return withWarning(
      `Service unavailable${code(failure)}: Wedge could not reach the PBX, or the PBX is overloaded.`,
      failure,
    );
  }
  if (cause === 'User Denied Media Access') return microphoneProblem({ name: 'NotAllowedError' });
  if (cause === 'WebRTC Error' || cause === 'Bad Media Description') {
    return 'The browser could not set up the call\'s audio (WebRTC error). Reload the page and try again.';
  }
  if (cause === 'Connection Error') return 'The connection to Wedge was lost during the call.';
  if (cause === 'RTP Timeout') return 'The call\'s audio stopped arriving, so the call was ended.';
  return withWarning(`The call failed${code(failure)}${status ? '' : ': ' + (cause || 'unknown error')}.`, failure);
}

/** Why getUserMedia failed. */
export function microphoneProblem(error) {
  const name = error && error.name;
  if (name === 'NotAllowedError' || name === 'PermissionDeniedError') {
    return 'Microphone access was denied. Allow the microphone for this page (the icon in the ' +
      'address bar, or the browser\'s site settings), then try again.';
  }
  if (name === 'NotFoundError' || name === 'DevicesNotFoundError') {
    return 'No microphone was found. Plug one in (or enable it in the system settings), then try again.';
  }
  if (name === 'NotReadableError' || name === 'TrackStartError') {
    return 'The microphone could not be started: another application may be using it.';
  }
  if (name === 'SecurityError' || name === 'TypeError') {
    return 'This page cannot use the microphone here: browsers allow it only on https:// pages (or localhost).';
  }
  return `The microphone could not be used: ${(error && error.message) || error}.`;
}

/**
 * Why the WebSocket to Wedge failed. ``reachable``: whether an HTTPS request to the same
 * host and port worked (then the server is up and its certificate trusted, so it is the
 * WebSocket itself that was refused).
 */
export function connectionProblem(url, reachable) {
  const https = url.replace(/^wss:/, 'https:').replace(/^ws:/, 'http:');
  if (reachable) {
    return `Wedge at ${url} refused the WebSocket connection. It takes SIP over WebSocket ` +
      '(the "sip" subprotocol) from a limited number of connections per address: close other ' +
      'tabs of this page, or check the server URL.';
  }
  return `Cannot connect to Wedge at ${url}.\n` +
    `Either it is not running there (start it with: wedge demo), or this browser does not ` +
    `trust its certificate yet: open ${https} in a new tab, check the certificate's ` +
    'fingerprint against the one `wedge demo` printed, accept it, then register again.';
}
