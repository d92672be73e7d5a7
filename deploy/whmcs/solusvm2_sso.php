<?php
/**
 * postpay for WHMCS: "Log in to SolusVM 2" (the panel's button). Install at the WHMCS root.
 *
 * For the signed-in user, if they may (the client's owner, or a user with the permission named in
 * config.php), asks postpay for a fresh single-use login link and sends the browser there; postpay
 * redeems it for a SolusVM 2 one-time token and redirects into the control panel.
 */

use WHMCS\Authentication\CurrentUser;

define('CLIENTAREA', true);

require __DIR__ . '/init.php';
require_once __DIR__ . '/includes/postpay_solusvm2/client.php';

/** A small page saying why not, with the way back. */
function postpay_solusvm2_answer(int $status, string $title, string $html): void
{
    http_response_code($status);
    echo '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>SolusVM 2</title></head><body>'
        . '<h1>' . htmlspecialchars($title) . '</h1>' . $html
        . '<p><a href="clientarea.php">Back to the client area</a></p></body></html>';
    exit;
}

header('Cache-Control: no-store');
$currentUser = new CurrentUser();
$user = $currentUser->user();
$client = $currentUser->client();
if (!$user || !$client) {
    header('Location: login.php', true, 302);
    exit;
}
if (!postpay_solusvm2_may_sso($user, $client)) {
    $permission = trim((string) postpay_solusvm2_config()['sso_permission']);
    $who = $permission === ''
        ? 'Only the owner of this account can'
        : 'Only the owner of this account, or a user given the "' . htmlspecialchars($permission) . '" permission, can';
    postpay_solusvm2_answer(403, 'You cannot log in to SolusVM 2 for this account',
        '<p>' . $who . ' open its SolusVM 2 control panel, where its virtual machines are managed. '
        . 'Please ask the account owner.</p>');
}
$login = postpay_solusvm2_login_url((int) $client->id);
if (isset($login['url'])) {
    header('Location: ' . $login['url'], true, 302);
    exit;
}
if ($login['error'] === 'not_enrolled') {
    $panel = postpay_solusvm2_panel((int) $client->id);
    $signup = is_array($panel) && isset($panel['landing_url']) && preg_match('#^https?://#', $panel['landing_url'])
        ? ' <a href="' . htmlspecialchars($panel['landing_url']) . '">Learn more and sign up</a>.' : '';
    postpay_solusvm2_answer(404, 'This account is not enrolled in SolusVM 2',
        '<p>This client account has no SolusVM 2 post-pay account yet.' . $signup . '</p>');
}
postpay_solusvm2_answer(503, 'SolusVM 2 is not reachable right now', '<p>Please try again in a minute.</p>');
