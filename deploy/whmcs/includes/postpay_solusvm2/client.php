<?php
/**
 * postpay for WHMCS: talking to the postpay signup service, server to server.
 *
 * Every request carries X-Postpay-Timestamp (Unix seconds), X-Postpay-Nonce (random, new for every
 * request) and X-Postpay-Signature: hex(HMAC-SHA256(shared_secret,
 * "<timestamp>.<nonce>.<client id>.<purpose>")), purpose "panel", "sso" or "finish". postpay refuses unsigned,
 * altered, stale (older than its freshness window) and replayed (a nonce seen before) requests.
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
        $config += ['url' => '', 'shared_secret' => '', 'timeout_seconds' => 5, 'connect_timeout_seconds' => 2,
                    'sso_permission' => ''];
    }
    return $config;
}

/**
 * One signed request to postpay. ['status' => HTTP status, 'body' => decoded JSON or null], or null when
 * postpay did not answer at all (not configured, unreachable, too slow).
 */
function postpay_solusvm2_request(string $method, int $clientId, string $purpose, string $path): ?array
{
    $config = postpay_solusvm2_config();
    if ($config['url'] === '' || $config['shared_secret'] === '' || $clientId <= 0 || !function_exists('curl_init')) {
        return null;
    }
    $timestamp = (string) time();
    $nonce = bin2hex(random_bytes(16));
    $signature = hash_hmac('sha256', $timestamp . '.' . $nonce . '.' . $clientId . '.' . $purpose, $config['shared_secret']);
    $curl = curl_init(rtrim($config['url'], '/') . $path);
    $options = $method === 'POST' ? [CURLOPT_POST => true, CURLOPT_POSTFIELDS => ''] : [CURLOPT_HTTPGET => true];
    curl_setopt_array($curl, $options + [
        CURLOPT_HTTPHEADER => [
            'Accept: application/json',
            'X-Postpay-Timestamp: ' . $timestamp,
            'X-Postpay-Nonce: ' . $nonce,
            'X-Postpay-Signature: ' . $signature,
        ],
        CURLOPT_RETURNTRANSFER => true,
        // Short: the client area waits on this; a slow postpay must not hold WHMCS's page.
        CURLOPT_CONNECTTIMEOUT => max(1, (int) $config['connect_timeout_seconds']),
        CURLOPT_TIMEOUT => max(1, (int) $config['timeout_seconds']),
        CURLOPT_FOLLOWLOCATION => false,
        CURLOPT_PROTOCOLS => CURLPROTO_HTTP | CURLPROTO_HTTPS,
    ]);
    $body = curl_exec($curl);
    $status = (int) curl_getinfo($curl, CURLINFO_RESPONSE_CODE);
    curl_close($curl);
    if ($body === false || $status === 0) {
        return null;
    }
    $decoded = json_decode((string) $body, true);
    return ['status' => $status, 'body' => is_array($decoded) ? $decoded : null];
}

/** The panel for a client: ['enrolled' => bool, 'title' => string, 'html' => string, ...] or null. */
function postpay_solusvm2_panel(int $clientId): ?array
{
    $answer = postpay_solusvm2_request('GET', $clientId, 'panel', '/api/v1/panel/' . $clientId);
    $panel = ($answer !== null && $answer['status'] === 200) ? $answer['body'] : null;
    if ($panel === null || !isset($panel['title'], $panel['html'], $panel['enrolled'])) {
        return null;
    }
    return $panel;
}

/**
 * A fresh single-use login link (valid at most 60 seconds) for an enrolled client:
 * ['url' => ...], or ['error' => 'not_enrolled' | 'unreachable'].
 */
function postpay_solusvm2_login_url(int $clientId): array
{
    $answer = postpay_solusvm2_request('POST', $clientId, 'sso', '/api/v1/panel/' . $clientId . '/sso');
    if ($answer !== null && $answer['status'] === 404) {
        return ['error' => 'not_enrolled'];
    }
    $url = ($answer !== null && $answer['status'] === 200) ? ($answer['body']['url'] ?? null) : null;
    if (is_string($url) && preg_match('#^https?://#', $url)) {
        return ['url' => $url];
    }
    return ['error' => 'unreachable'];
}

/**
 * A fresh single-use link to the terms (valid at most 60 seconds) for a client who confirmed the email
 * but never accepted them: ['url' => ...], or ['error' => 'not_waiting' | 'unreachable'].
 */
function postpay_solusvm2_finish_url(int $clientId): array
{
    $answer = postpay_solusvm2_request('POST', $clientId, 'finish', '/api/v1/panel/' . $clientId . '/finish');
    if ($answer !== null && $answer['status'] === 404) {
        return ['error' => 'not_waiting'];
    }
    $url = ($answer !== null && $answer['status'] === 200) ? ($answer['body']['url'] ?? null) : null;
    if (is_string($url) && preg_match('#^https?://#', $url)) {
        return ['url' => $url];
    }
    return ['error' => 'unreachable'];
}

/**
 * Whether the signed-in user may open this client's SolusVM 2: the client's owner always; another user
 * of the client only with the permission the operator names in config.php ('sso_permission'), none by
 * default. The SolusVM 2 panel controls real machines: a sub-user given "invoices" must not get it.
 */
function postpay_solusvm2_may_sso($user, $client): bool
{
    if (!$user || !$client) {
        return false;
    }
    $owner = method_exists($client, 'owner') ? $client->owner() : null;
    if ($owner && (int) $owner->id === (int) $user->id) {
        return true;
    }
    $permission = trim((string) postpay_solusvm2_config()['sso_permission']);
    if ($permission === '' || !method_exists($user, 'clients')) {
        return false;
    }
    $relation = $user->clients()->find($client->id);
    if (!$relation || !isset($relation->pivot) || !method_exists($relation->pivot, 'getPermissions')) {
        return false;
    }
    $permissions = $relation->pivot->getPermissions();
    $names = is_object($permissions) && method_exists($permissions, 'get') ? $permissions->get() : (array) $permissions;
    return in_array($permission, (array) $names, true);
}

/**
 * Green when the account works, amber while suspended or while the terms wait to be accepted, red when
 * locked, blue when not enrolled or being set up.
 */
function postpay_solusvm2_panel_colour(array $panel)
{
    $colours = ['active' => 'green', 'suspended' => 'amber', 'locked' => 'red', 'not_enrolled' => 'blue',
                'awaiting_terms' => 'amber', 'setting_up' => 'blue'];
    $state = isset($panel['state']) ? $panel['state'] : ($panel['enrolled'] ? 'active' : 'not_enrolled');
    return isset($colours[$state]) ? $colours[$state] : 'blue';
}
