<?php

// The plain PHP example of examples/SPEC.md: one front controller, behind
// the gateway's php_fastcgi, with no session code beyond helpers/php.

declare(strict_types=1);

require __DIR__ . '/../../../helpers/php/autoload.php';

use CaddySession\Session;
use CaddySession\SessionException;

$secret = (string) getenv('SESSION_SECRET');
// The session from $_SERVER (HTTP_X_SESSION_*); ->verified says whether
// X-Session-Signature held.
$session = Session::fromGlobals(['secrets' => $secret === '' ? [] : [$secret]]);

/**
 * Sends the session's headers, then the JSON answer. $json is already
 * JSON text, so that session data keeps its objects ({} is not []).
 */
function reply(Session $session, int $status, string $json): never
{
    http_response_code($status);
    header('Content-Type: application/json');
    $session->send(); // before any output
    echo $json;
    exit;
}

function json(mixed $value): string
{
    return json_encode($value, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR);
}

$method = $_SERVER['REQUEST_METHOD'] ?? 'GET';
$path = parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH);

switch ("$method $path") {
    case 'GET /session':
        reply($session, 200, '{"id":' . json($session->id) . ',"new":' . json($session->isNew)
            . ',"data":' . $session->dataJson() . ',"verified":' . json($session->verified) . '}');

    case 'GET /verify':
        // The signature check alone: never a 500, whatever the headers hold.
        reply($session, $session->verified ? 200 : 401, json(['ok' => $session->verified]));

    case 'POST /login':
        $user = $_POST['user'] ?? null;
        if (!is_string($user) || $user === '') {
            reply($session, 400, json(['error' => 'user is required']));
        }
        // A new ID at login, against session fixation; the data is kept.
        $session->regenerate()->set('user', $user);
        reply($session, 200, json(['user' => $user]));

    case 'POST /logout':
        $session->clear();
        reply($session, 200, json(['ok' => true]));

    case 'POST /counter':
        $counter = $session->get('counter');
        $counter = (is_int($counter) ? $counter : 0) + 1;
        $session->set('counter', $counter);
        reply($session, 200, json(['counter' => $counter]));

    case 'POST /set':
        $key = $_POST['key'] ?? null;
        $value = $_POST['value'] ?? null;
        if (!is_string($key) || $key === '' || !is_string($value)) {
            reply($session, 400, json(['error' => 'key and value are required']));
        }
        try {
            $session->set($key, $value);
        } catch (SessionException $e) {
            if ($e->reason !== SessionException::TOO_LARGE) {
                throw $e;
            }
            reply($session, 413, json(['error' => $e->getMessage()]));
        }
        reply($session, 200, json(['ok' => true]));

    case 'POST /remember':
        $seconds = $_POST['seconds'] ?? '';
        if (!is_string($seconds) || preg_match('/^[0-9]{1,9}\z/', $seconds) !== 1 || (int) $seconds > Session::MAX_EXPIRY) {
            reply($session, 400, json(['error' => 'seconds: whole seconds from 0 to ' . Session::MAX_EXPIRY]));
        }
        $session->setExpiry((int) $seconds);
        reply($session, 200, json(['ok' => true]));

    case 'GET /headers':
        // What the app received, as PHP shows it: getallheaders() names
        // them from $_SERVER's HTTP_* (so X_Session_Data would show as
        // X-Session-Data: FastCGI cannot tell them apart).
        $headers = [];
        foreach (getallheaders() as $name => $value) {
            if (preg_match('/^x[-_]session/i', (string) $name) === 1) {
                $headers[$name] = $value;
            }
        }
        reply($session, 200, '{"headers":' . ($headers === [] ? '{}' : json($headers)) . '}');

    default:
        reply($session, 404, json(['error' => 'not found']));
}
