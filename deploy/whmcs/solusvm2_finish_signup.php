<?php
/**
 * postpay for WHMCS: "Finish signing up" (the panel's button for a customer who confirmed their email
 * but never accepted the terms). Install at the WHMCS root, next to solusvm2_sso.php.
 *
 * Accepting the terms binds the account, so only the client's owner may: for them it asks postpay for a
 * fresh single-use link to the terms (valid at most 60 seconds) and sends the browser there.
 */

use WHMCS\Authentication\CurrentUser;

define('CLIENTAREA', true);

require __DIR__ . '/init.php';
require_once __DIR__ . '/includes/postpay_solusvm2/client.php';

/** A small page saying why not, with the way back. */
function postpay_solusvm2_finish_answer(int $status, string $title, string $html): void
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
$owner = method_exists($client, 'owner') ? $client->owner() : null;
if (!$owner || (int) $owner->id !== (int) $user->id) {
    postpay_solusvm2_finish_answer(403, 'Only the account owner can finish signing up',
        '<p>Accepting the terms of the SolusVM 2 post-pay service is for the owner of this account. '
        . 'Please ask them to log in and press Finish signing up.</p>');
}
$finish = postpay_solusvm2_finish_url((int) $client->id);
if (isset($finish['url'])) {
    header('Location: ' . $finish['url'], true, 302);
    exit;
}
if ($finish['error'] === 'not_waiting') {
    postpay_solusvm2_finish_answer(404, 'Nothing to finish',
        '<p>This account has no SolusVM 2 signup waiting for its terms.</p>');
}
postpay_solusvm2_finish_answer(503, 'The signup service is not reachable right now', '<p>Please try again in a minute.</p>');
