<?php

// Tests of the PHP helper: every vector of helpers/vectors.json, then the
// helper's own guarantees. Run: php helpers/php/tests/run.php
// Prints each failure, then "N passed, N failed"; exits 1 on any failure.

declare(strict_types=1);

use CaddySession\Json;
use CaddySession\RawObject;
use CaddySession\Session;
use CaddySession\SessionException;

require __DIR__ . '/../autoload.php';

$passed = 0;
$failed = 0;

function check(bool $ok, string $what): void
{
    global $passed, $failed;
    if ($ok) {
        $passed++;
    } else {
        $failed++;
        fwrite(STDERR, "FAIL: $what\n");
    }
}

function same(mixed $got, mixed $want, string $what): void
{
    check($got === $want, $what . ($got === $want ? '' : ': got ' . var_export($got, true) . ', want ' . var_export($want, true)));
}

// An exception nobody expected is one more failure, and the closing line
// still says so.
set_exception_handler(function (\Throwable $e): void {
    global $passed, $failed;
    $failed++;
    fwrite(STDERR, 'FAIL: uncaught ' . $e::class . ': ' . $e->getMessage() . ' at ' . $e->getFile() . ':' . $e->getLine() . "\n");
    echo "$passed passed, $failed failed\n";
    exit(1);
});

/** Runs $fn and returns what it threw, or null. */
function thrown(callable $fn): ?\Throwable
{
    try {
        $fn();
    } catch (\Throwable $e) {
        return $e;
    }
    return null;
}

// --- helpers/vectors.json ---------------------------------------------------

$text = file_get_contents(__DIR__ . '/../../vectors.json');
$vectors = json_decode($text, true, 512, JSON_THROW_ON_ERROR);
// The file as a raw tree too, so that the canonical vectors' values keep
// their numbers as written (json_decode would make 1e3 the float 1000).
$raw = Json::parse($text);

check(count($vectors['signatures']) >= 20 && count($vectors['canonical']) >= 10 && count($vectors['merge']) >= 10, 'vectors: every section is there');

foreach ($vectors['signatures'] as $v) {
    $opts = ['now' => $v['now'], 'maxAge' => $v['max_age'], 'sessionName' => $v['session_name']];
    same(Session::verify($v['headers'], $v['secrets'], $opts), $v['valid'], "signature vector '{$v['name']}'");
    // As PHP-FPM shows them: $_SERVER['HTTP_X_SESSION_ID'].
    $server = [];
    foreach ($v['headers'] as $k => $x) {
        $server['HTTP_' . strtoupper(str_replace('-', '_', $k))] = $x;
    }
    same(Session::verify($server, $v['secrets'], $opts), $v['valid'], "signature vector '{$v['name']}' (CGI names)");
    same(Session::fromHeaders($server, ['secrets' => $v['secrets']] + $opts)->verified, $v['valid'], "signature vector '{$v['name']}' (fromHeaders)");
}

foreach ($vectors['canonical'] as $i => $v) {
    same(Json::encode($raw->members['canonical'][$i]->members['value']), $v['canonical'], "canonical vector '{$v['name']}'");
    same(Json::canonicalize($v['canonical']), $v['canonical'], "canonical vector '{$v['name']}' re-parsed");
    if ($v['name'] !== 'numbers as written' && $v['name'] !== 'empty') {
        // An app's own PHP value (as json_decode gives it).
        same(Json::canonical($v['value']), $v['canonical'], "canonical vector '{$v['name']}' from PHP values");
    }
}

foreach ($vectors['merge'] as $v) {
    $result = Json::applyPatches($v['data'], $v['patches']);
    $tooLarge = Json::overSize($result, $v['data'], $v['max_size']);
    same($tooLarge, $v['too_large'], "merge vector '{$v['name']}': too_large");
    if (!$tooLarge) {
        same($result, $v['result'], "merge vector '{$v['name']}': result");
    }
    // The same change through a Session: refused exactly when the gateway refuses it.
    $s = Session::fromHeaders(['X-Session-Data' => $v['data']], ['maxSize' => $v['max_size']]);
    $e = thrown(function () use ($s, $v) {
        foreach ($v['patches'] as $p) {
            $s->update(json_decode($p, false, 512, JSON_THROW_ON_ERROR));
        }
    });
    if ($v['too_large']) {
        same($e instanceof SessionException ? $e->reason : null, 'SESSION_TOO_LARGE', "merge vector '{$v['name']}' through a Session");
        same($s->patch(), null, "merge vector '{$v['name']}': a refused change sends nothing");
    } else {
        same($e, null, "merge vector '{$v['name']}' through a Session");
        $p = $s->patch();
        same(Json::applyPatches($v['data'], $p === null ? [] : [$p]), $v['result'], "merge vector '{$v['name']}': the one patch gives the result");
    }
}

// --- escaping -----------------------------------------------------------------

$cases = [
    ['é', '"\u00e9"'],
    ['😀', '"\ud83d\ude00"'],
    ['漢字', '"\u6f22\u5b57"'],
    ["a\u{2028}b\u{2029}c", '"a\u2028b\u2029c"'],
    ["\x7f", '"\u007f"'],
    ["\x00\x1f\t\n\r\x08\f", '"\u0000\u001f\t\n\r\b\f"'],
    ['"\\/<>&\'', '"\"\\\\/<>&\'"'],
    ["a\xffb", '"a\ufffdb"'], // not UTF-8: the gateway would store U+FFFD
];
foreach ($cases as [$value, $want]) {
    $s = Session::fromHeaders(['X-Session-Data' => '{}']);
    $s->set('v', $value);
    $h = $s->responseHeaders();
    same($h, [['X-Session-Set', '{"v":' . $want . '}']], 'escaping of ' . json_encode($value, JSON_INVALID_UTF8_SUBSTITUTE));
    check(preg_match('/^[\x20-\x7e]*\z/', $h[0][1]) === 1, 'patch is printable ASCII');
    same(json_decode($h[0][1], true)['v'], $s->get('v'), 'the app reads back what the gateway will hold');
}
same(Json::canonical(['😀' => 1, "\u{ffff}" => 2, 'é' => 3, 'z' => 4, 'A' => 5, '1' => 6]),
    '{"1":6,"A":5,"z":4,"\u00e9":3,"\uffff":2,"\ud83d\ude00":1}', 'keys sort by code point');
same(Json::canonicalize('{"a":"\ud800x","b":"\udc00\ud83d\ude00"}'), '{"a":"\ufffdx","b":"\ufffd\ud83d\ude00"}', 'lone surrogates become U+FFFD');

// --- canonical JSON details ---------------------------------------------------

same(Json::canonical(['a' => [1, 2], 'o' => new \stdClass(), 'f' => 1.5, 'n' => null, 't' => true]), '{"a":[1,2],"f":1.5,"n":null,"o":{},"t":true}', 'PHP values: lists, stdClass, floats');
check(thrown(fn () => Json::canonical(['x' => NAN])) instanceof \InvalidArgumentException, 'NaN refused');
check(thrown(fn () => Json::canonical(['x' => new \DateTime()])) instanceof \InvalidArgumentException, 'arbitrary objects refused');
foreach (['', '{', '{"a":01}', '{"a":1,}', "{'a':1}", "{\"a\":\"\x01\"}", '{"a":"\x"}', '{} x', '{"a":+1}', '{"a":.5}', '{"a":-}', 'nul', '{"a":1}' . "\n" . 'x'] as $bad) {
    check(thrown(fn () => Json::canonicalize($bad)) instanceof \JsonException, 'invalid JSON refused: ' . json_encode($bad));
}
same(Json::canonicalize(' {"a" : [ 1 , 2 ] , "a":3 } '), '{"a":3}', 'whitespace, and the last duplicate wins');
same(Json::canonicalize('{"n":[1e3,-0,12345678901234567890,1.50]}'), '{"n":[1e3,-0,12345678901234567890,1.50]}', 'numbers as written');

// --- one patch per response ---------------------------------------------------

$data = '{"cart":[1,2],"keep":1,"prefs":{"a":1,"b":2},"user":"alice"}';
$s = Session::fromHeaders(['X-Session-Id' => 'abc', 'X-Session-New' => 'false', 'X-Session-Data' => $data]);
same([$s->id, $s->isNew, $s->responseHeaders()], ['abc', false, []], 'an unchanged session sends nothing');
$s->set('user', 'bob')->set('user', 'carol')->set('prefs', ['a' => 1, 'c' => 3])->delete('cart')->set('keep', 1);
same($s->responseHeaders(), [['X-Session-Set', '{"cart":null,"prefs":{"b":null,"c":3},"user":"carol"}']], 'only what changed, in one patch');
same($s->data(), ['keep' => 1, 'prefs' => ['a' => 1, 'c' => 3], 'user' => 'carol'], 'data() shows the changes');
same(Json::applyPatches($data, [$s->patch()]), Json::canonical($s->data()), 'the patch gives the gateway the data the app sees');

$s = Session::fromHeaders(['X-Session-Data' => '{"o":{"p":1,"q":2},"x":1}']);
$s->update(['o' => ['q' => null, 'r' => 3], 'x' => null, 'n' => ['deep' => null, 'kept' => [null]]]);
same($s->data(), ['n' => ['kept' => [null]], 'o' => ['p' => 1, 'r' => 3]], 'update is a merge patch');
$s->set('n', null);
same($s->has('n'), false, 'set null deletes');
check(thrown(fn () => $s->update([1, 2])) instanceof \InvalidArgumentException, 'a list is not a patch');

$s = Session::fromHeaders(['X-Session-Data' => '{"a":1}']);
$s->clear();
same($s->responseHeaders(), [['X-Session-Clear', 'true']], 'clear');
$s->set('b', 2)->regenerate()->setExpiry(1209600);
same($s->responseHeaders(), [['X-Session-Clear', 'true'], ['X-Session-Regenerate', 'true'], ['X-Session-Set', '{"b":2}'], ['X-Session-Expiry', '1209600']], 'clear, regenerate, set, expiry');
foreach ([-1, 34560001] as $bad) {
    check(thrown(fn () => $s->setExpiry($bad)) instanceof \RangeException, "expiry $bad refused");
}

$names = Session::headerNames('alt_session');
same([$names['set'], Session::headerNames('admin')['signature']], ['X-Alt-Session-Set', 'X-Admin-Signature'], 'header names follow session_name');
$s = Session::fromHeaders(['HTTP_X_ALT_SESSION_DATA' => '{"a":1}', 'HTTP_X_SESSION_DATA' => '{"b":1}'], ['sessionName' => 'alt_session']);
$s->set('a', 2);
same($s->responseHeaders(), [['X-Alt-Session-Set', '{"a":2}']], 'alt_session reads and writes its own headers');

foreach ([[], ['X-Session-Data' => 'nope'], ['X-Session-Data' => '[1]'], ['X-Session-Data' => ['{}', '{}']], ['X-Session-Data' => '{"a":1}', 'x-session-data' => '{"a":1}']] as $i => $h) {
    $s = Session::fromHeaders($h);
    same([$s->data(), $s->isNew], [[], false], "malformed headers give an empty session ($i)");
}
same(Session::fromHeaders([])->id, null, 'no id without X-Session-Id');
same(Session::fromHeaders([])->dataJson(), '{}', 'dataJson of an empty session is an object');
same(Session::fromHeaders(['X-Session-Data' => '{"b":{},"a":"\\u00e9"}'])->dataJson(), '{"a":"\\u00e9","b":{}}', 'dataJson keeps empty objects');

// --- sizes --------------------------------------------------------------------

$s = Session::fromHeaders(['X-Session-Data' => '{"a":"x"}'], ['maxSize' => 30]);
$room = 30 - strlen('{"a":"x","k":""}');
$s->set('k', str_repeat('y', $room));
same($s->size(), 30, 'exactly max_size accepted');
$before = $s->patch();
$e = thrown(fn () => $s->set('k', str_repeat('y', $room + 1)));
same($e instanceof SessionException ? [$e->reason, $e->size, $e->maxSize] : null, ['SESSION_TOO_LARGE', 31, 30], 'one byte more refused');
same([$s->patch(), $s->size()], [$before, 30], 'a refused change changes nothing');
$s->set('k', str_repeat('y', $room - 6) . 'é');
check(thrown(fn () => $s->set('k', str_repeat('y', $room - 5) . 'é')) instanceof SessionException, 'an escape counts as written (é is 6 bytes)');

$s = Session::fromHeaders(['X-Session-Data' => '{"k":"' . str_repeat('x', 30) . '"}'], ['maxSize' => 20]);
$s->set('k', str_repeat('x', 25));
check(thrown(fn () => $s->set('k', str_repeat('x', 31))) instanceof SessionException, 'data over the limit may not grow');
$s->set('k', str_repeat('x', 30));
$s->clear();
check(thrown(fn () => $s->set('k', str_repeat('x', 20))) instanceof SessionException, 'after a clear the data starts from empty');

$s = Session::fromHeaders([]);
$s->set('k', str_repeat('x', 8000 - 8));
same($s->size(), 8000, 'default max_size: 8000 accepted');
check(thrown(fn () => $s->set('k', str_repeat('x', 8001 - 8))) instanceof SessionException, 'default max_size: 8001 refused');

$s = Session::fromHeaders([]);
$s->markSent();
same(thrown(fn () => $s->set('a', 1))?->reason ?? null, 'SESSION_SENT', 'a change after sending throws');

// --- subject, revoke, persist ------------------------------------------------

// Subjects and revoke targets the helpers take and refuse, the same in every language's tests.
$allPrintable = '';
for ($c = 0x21; $c <= 0x7e; $c++) {
    $allPrintable .= ($c === 0x50 ? ' ' : '') . chr($c);
}
$goodSubjects = ['42', 'user@example.com', 'a b', '~', str_repeat('x', Session::MAX_SUBJECT_LENGTH), $allPrintable];
$badSubjects = ['', ' 42', '42 ', ' ', "4\t2", "a\nb", "\x00", "\x7f", 'é', "x\xff", str_repeat('x', Session::MAX_SUBJECT_LENGTH + 1)];
$goodTargets = ['others', 'all', str_repeat('A', 22), 'abcdefghijklmnopqrstu-', '0123456789_-ABCDEFGHIJ'];
$badTargets = ['', 'other', 'Others', 'ALL', ' all', 'others ', 'none', str_repeat('A', 21), str_repeat('A', 23),
    str_repeat('A', 21) . '+', str_repeat('A', 21) . '/', str_repeat('A', 20) . '==', str_repeat('A', 21) . 'é',
    str_repeat('A', 21) . "\n", str_repeat('A', 22) . "\n"];

$s = Session::fromHeaders(['X-Session-Data' => '{"cart":[1]}']);
$s->regenerate()->set('user', 'alice')->setSubject('42')->revokeOthers()->setPersist(true);
same($s->responseHeaders(), [
    ['X-Session-Regenerate', 'true'],
    ['X-Session-Set', '{"user":"alice"}'],
    ['X-Session-Subject', '42'],
    ['X-Session-Persist', 'true'],
    ['X-Session-Revoke', 'others'],
], 'login: regenerate, set, subject, persist, revoke others');
$s->setSubject('43')->setPersist(false);
same(array_slice($s->responseHeaders(), 2, 2), [['X-Session-Subject', '43'], ['X-Session-Persist', 'false']], 'a later subject and persist replace the earlier');

$s = Session::fromHeaders(['X-Session-Data' => '{"a":1}']);
$s->regenerate()->set('b', 2)->setExpiry(3600);
same(array_column($s->responseHeaders(), 0), ['X-Session-Regenerate', 'X-Session-Set', 'X-Session-Expiry'], 'no subject, revoke or persist when not asked for');

foreach ($goodSubjects as $subject) {
    $s = Session::fromHeaders(['X-Session-Data' => '{}']);
    same($s->setSubject($subject)->responseHeaders(), [['X-Session-Subject', $subject]], "subject '$subject' taken");
}
foreach ($badSubjects as $i => $subject) {
    $s = Session::fromHeaders(['X-Session-Data' => '{}'])->setSubject('kept');
    $e = thrown(fn () => $s->setSubject($subject));
    check($e instanceof \InvalidArgumentException && str_contains($e->getMessage(), 'subject'), "bad subject ($i) refused: " . ($e ? $e::class . ' ' . $e->getMessage() : 'no exception'));
    same($s->responseHeaders(), [['X-Session-Subject', 'kept']], "a refused subject ($i) changes nothing");
}
$s = Session::fromHeaders(['X-Session-Data' => '{"user":"alice"}'])->removeSubject();
same($s->responseHeaders(), [['X-Session-Subject', '']], 'removeSubject sends the empty value');
same($s->setSubject('42')->responseHeaders(), [['X-Session-Subject', '42']], 'setSubject after removeSubject');

foreach ($goodTargets as $target) {
    $s = Session::fromHeaders(['X-Session-Data' => '{}']);
    same($s->revoke($target)->responseHeaders(), [['X-Session-Revoke', $target]], "revoke '$target' taken");
}
foreach ($badTargets as $i => $target) {
    $s = Session::fromHeaders(['X-Session-Data' => '{}']);
    $e = thrown(fn () => $s->revoke($target));
    check($e instanceof \InvalidArgumentException && str_contains($e->getMessage(), 'want "others", "all" or a session handle'), "bad revoke target ($i) refused");
    same($s->responseHeaders(), [], "a refused revoke target ($i) changes nothing");
}
$s = Session::fromHeaders(['X-Session-Data' => '{}'])->revokeOthers()->revoke('others');
foreach ([fn () => $s->revokeAll(), fn () => $s->revoke(str_repeat('A', 22))] as $i => $other) {
    $e = thrown($other);
    same($e instanceof SessionException ? $e->reason : null, 'SESSION_REVOKE_CONFLICT', "a second revoke target ($i) refused");
}
same($s->responseHeaders(), [['X-Session-Revoke', 'others']], 'one revoke per response: the first stays');
same(Session::fromHeaders([])->revokeAll()->responseHeaders(), [['X-Session-Revoke', 'all']], 'revokeAll');
same(Session::fromHeaders([])->setPersist(false)->responseHeaders(), [['X-Session-Persist', 'false']], 'setPersist(false)');

$s = Session::fromHeaders(['X-Session-Data' => '{"user":"alice"}']);
$s->setSubject('42')->setPersist(true)->revokeAll()->regenerate()->clear();
same($s->responseHeaders(), [['X-Session-Clear', 'true'], ['X-Session-Regenerate', 'true'], ['X-Session-Persist', 'true'], ['X-Session-Revoke', 'all']],
    'clear drops a subject set before it; revoke, persist and regenerate stay');
$s->set('user', 'bob')->setSubject('43');
same(array_slice($s->responseHeaders(), 2, 2), [['X-Session-Set', '{"user":"bob"}'], ['X-Session-Subject', '43']], 'a subject after clear names the new session');
$s->clear();
same(in_array('X-Session-Subject', array_column($s->responseHeaders(), 0), true), false, 'a second clear drops it again');
same(Session::fromHeaders(['X-Session-Data' => '{"a":1}'])->removeSubject()->clear()->responseHeaders(), [['X-Session-Clear', 'true']], 'removeSubject before clear is dropped');

$names = Session::headerNames('alt_session');
same([$names['subject'], $names['revoke'], $names['persist']], ['X-Alt-Session-Subject', 'X-Alt-Session-Revoke', 'X-Alt-Session-Persist'], 'subject, revoke, persist names follow session_name');
$s = Session::fromHeaders(['HTTP_X_ALT_SESSION_DATA' => '{}'], ['sessionName' => 'alt_session']);
same($s->setSubject('42')->revokeOthers()->setPersist(false)->responseHeaders(),
    [['X-Alt-Session-Subject', '42'], ['X-Alt-Session-Persist', 'false'], ['X-Alt-Session-Revoke', 'others']], 'alt_session: subject, persist, revoke');

$s = Session::fromHeaders([]);
$s->markSent();
foreach (['setSubject' => fn () => $s->setSubject('42'), 'removeSubject' => fn () => $s->removeSubject(), 'revoke' => fn () => $s->revoke('others'),
    'revokeOthers' => fn () => $s->revokeOthers(), 'revokeAll' => fn () => $s->revokeAll(), 'setPersist' => fn () => $s->setPersist(true)] as $what => $late) {
    same(thrown($late)?->reason ?? null, 'SESSION_SENT', "$what after sending throws");
}

// --- signatures: the helper's own --------------------------------------------

const SECRET = 'a-secret-of-at-least-32-bytes-for-the-tests';

function signed(string $data, ?int $t = null, string $secret = SECRET): array
{
    $t ??= time();
    $id = '0123456789abcdef0123456789abcdef';
    $mac = hash_hmac('sha256', "$t.session.$id.false.$data", $secret);
    return ['X-Session-Id' => $id, 'X-Session-New' => 'false', 'X-Session-Data' => $data, 'X-Session-Signature' => "t=$t,v2=$mac"];
}

$h = signed('{"a":1}');
$sig = $h['X-Session-Signature'];
same(Session::verify($h, SECRET), true, 'genuine');
same(Session::verify($h, ['other', SECRET]), true, 'genuine, second secret');
same(Session::verify(signed('{}', time() - 301), SECRET), false, 'stale');
same(Session::verify(signed('{}', time() - 301), SECRET, ['maxAge' => 400]), true, 'maxAge');
$hostile = [
    ['X-Session-Signature' => ''] + $h,
    ['X-Session-Signature' => [$sig, $sig]] + $h,
    ['X-Session-Signature' => "$sig\n"] + $h,
    ['X-Session-Signature' => str_replace('t=', "t=\n", $sig)] + $h,
    ['X-Session-Signature' => "$sig,t=1"] + $h,
    ['X-Session-Signature' => "$sig,v2=" . str_repeat('0', 64)] + $h,
    ['X-Session-Signature' => str_replace('t=', 't=+', $sig)] + $h,
    ['X-Session-Signature' => str_replace(',', ', ', $sig)] + $h,
    ['X-Session-Signature' => $sig . 'ff'] + $h,
    ['X-Session-Signature' => str_repeat('x', 100000)] + $h,
    ['X-Session-Signature' => ',,,'] + $h,
    ['X-Session-Signature' => '=,='] + $h,
    ['X-Session-Signature' => 't=99999999999999999999,v2=' . str_repeat('0', 64)] + $h,
    ['X-Session-Signature' => 42] + $h,
    ['X-Session-Signature' => null] + $h,
    ['X-Session-Signature' => new \stdClass()] + $h,
    ['X-Session-Data' => "{\"a\":1}\u{e9}"] + $h,
    $h + ['x-session-signature' => $sig], // the same name twice, two spellings
    $h + ['HTTP_X_SESSION_SIGNATURE' => $sig],
    array_diff_key($h, ['X-Session-Id' => 1]),
    [],
];
foreach ($hostile as $i => $x) {
    same(Session::verify($x, SECRET), false, "hostile signature headers ($i)");
}
foreach ([[], [''], [null], [42], ''] as $i => $secrets) {
    same(Session::verify($h, $secrets), false, "useless secrets ($i)");
}
foreach ([['now' => NAN], ['now' => 'soon'], ['maxAge' => NAN], ['maxAge' => -1], ['sessionName' => 'bad name'], ['sessionName' => 7]] as $i => $opts) {
    same(Session::verify($h, SECRET, $opts), false, "odd options ($i)");
}

// --- send() and the PSR-15 middleware -----------------------------------------

// Under the CLI, header() is recorded but not written: headers_list() shows it.
if (function_exists('xdebug_get_headers') || PHP_SAPI === 'cli') {
    $s = Session::fromHeaders(['X-Session-Data' => '{}']);
    $s->set('e', 'é');
    $s->regenerate();
    $s->send();
    check(true, 'send() under the CLI does not throw');
}

check(!class_exists(\CaddySession\Middleware::class, false), 'Middleware is not loaded until used');
if (interface_exists(\Psr\Http\Server\MiddlewareInterface::class)) {
    // Real PSR packages are installed (Composer): the stand-ins below would
    // not implement them fully. The middleware is tested without them.
    echo "note: PSR interfaces installed, middleware test skipped\n";
} else {
    // Minimal stand-ins of the PSR interfaces, with the methods the
    // middleware calls, to run it for real.
    require __DIR__ . '/psr_stubs.php';
    $request = new TestRequest(signed('{"counter":2}'));
    $handler = new TestHandler(function (TestRequest $r): TestResponse {
        $s = $r->getAttribute(Session::ATTRIBUTE);
        $s->set('counter', $s->get('counter') + 1);
        return (new TestResponse())->withAddedHeader('X-Session-Set', '{"by":"hand"}');
    });
    $mw = new \CaddySession\Middleware(['secrets' => [SECRET]]);
    $response = $mw->process($request, $handler);
    same($handler->seen?->verified, true, 'middleware: verified');
    same($response->getHeader('X-Session-Set'), ['{"by":"hand"}', '{"counter":3}'], 'middleware: the patch is added, the app header kept');
    $forged = new TestRequest(['X-Session-Data' => '{"user":"admin"}'] + signed('{"user":"alice"}'));
    $mw->process($forged, $handler2 = new TestHandler(fn () => new TestResponse()));
    same($handler2->seen?->verified, false, 'middleware: forged data not verified');
    $alt = new \CaddySession\Middleware(['sessionName' => 'alt_session']);
    $response = $alt->process(new TestRequest(['X-Alt-Session-Data' => '{}']), new TestHandler(function (TestRequest $r): TestResponse {
        $r->getAttribute(Session::ATTRIBUTE)->setSubject('42')->revokeOthers()->setPersist(true);
        return new TestResponse();
    }));
    same([$response->getHeader('X-Alt-Session-Subject'), $response->getHeader('X-Alt-Session-Revoke'), $response->getHeader('X-Alt-Session-Persist')],
        [['42'], ['others'], ['true']], 'middleware: subject, revoke and persist added');
}

echo "$passed passed, $failed failed\n";
exit($failed === 0 ? 0 : 1);
