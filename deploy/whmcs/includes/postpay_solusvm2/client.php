<?php
/**
 * postpay for WHMCS: talking to the postpay signup service, server to server.
 *
 * Every request carries X-Postpay-Timestamp (Unix seconds) and X-Postpay-Signature:
 * hex(HMAC-SHA256(shared_secret, "<timestamp>.<client id>.<purpose>")), purpose "panel" or "sso".
 * postpay refuses unsigned, altered or stale requests (older than its freshness window).
 */

if (!defined('WHMCS')) {
    die('This file cannot be accessed directly');
}

/** The settings in config.php next to this file (copied from config.sample.php). */
function postpay_solusvm2_config(): array
{
    static $config = null;
    if ($config === null) {
        $file = __DIR__ . '/config.php';
        $config = is_readable($file) ? require $file : [];
        $config += ['url' => '', 'shared_secret' => '', 'timeout_seconds' => 5];
    }
    return $config;
}

/** One signed request to postpay; the decoded JSON answer, or null if postpay did not answer 200. */
function postpay_solusvm2_request(string $method, int $clientId, string $purpose, string $path): ?array
{
    $config = postpay_solusvm2_config();
    if ($config['url'] === '' || $config['shared_secret'] === '' || $clientId <= 0) {
        return null;
    }
    $timestamp = (string) time();
    $signature = hash_hmac('sha256', $timestamp . '.' . $clientId . '.' . $purpose, $config['shared_secret']);
    $context = stream_context_create(['http' => [
        'method' => $method,
        'header' => implode("\r\n", [
            'Accept: application/json',
            'Content-Length: 0',
            'X-Postpay-Timestamp: ' . $timestamp,
            'X-Postpay-Signature: ' . $signature,
        ]),
        'timeout' => (float) $config['timeout_seconds'],
        'ignore_errors' => true,
        'follow_location' => 0,
    ]]);
    $body = @file_get_contents(rtrim($config['url'], '/') . $path, false, $context);
    $headers = function_exists('http_get_last_response_headers')
        ? (http_get_last_response_headers() ?? [])
        : ($http_response_header ?? []);
    if ($body === false || !isset($headers[0]) || !preg_match('#^HTTP/\S+\s+200\b#', $headers[0])) {
        return null;
    }
    $answer = json_decode($body, true);
    return is_array($answer) ? $answer : null;
}

/** The panel for a client: ['enrolled' => bool, 'title' => string, 'html' => string, ...] or null. */
function postpay_solusvm2_panel(int $clientId): ?array
{
    $panel = postpay_solusvm2_request('GET', $clientId, 'panel', '/api/v1/panel/' . $clientId);
    if ($panel === null || !isset($panel['title'], $panel['html'], $panel['enrolled'])) {
        return null;
    }
    return $panel;
}

/** A fresh single-use login link (valid at most 60 seconds) for an enrolled client, or null. */
function postpay_solusvm2_login_url(int $clientId): ?string
{
    $answer = postpay_solusvm2_request('POST', $clientId, 'sso', '/api/v1/panel/' . $clientId . '/sso');
    $url = $answer['url'] ?? null;
    return is_string($url) && preg_match('#^https?://#', $url) ? $url : null;
}

/** Green when the account works, amber while suspended, red when locked, blue when not enrolled. */
function postpay_solusvm2_panel_colour(array $panel)
{
    $colours = ['active' => 'green', 'suspended' => 'amber', 'locked' => 'red', 'not_enrolled' => 'blue'];
    $state = isset($panel['state']) ? $panel['state'] : ($panel['enrolled'] ? 'active' : 'not_enrolled');
    return isset($colours[$state]) ? $colours[$state] : 'blue';
}
