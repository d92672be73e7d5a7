<?php
/**
 * postpay for WHMCS: "Log in to SolusVM 2" (the panel's button). Install at the WHMCS root.
 *
 * For the signed-in client, asks postpay for a fresh single-use login link and sends the browser
 * there; postpay redeems it for a SolusVM 2 one-time token and redirects into the control panel.
 */

use WHMCS\Authentication\CurrentUser;

define('CLIENTAREA', true);

require __DIR__ . '/init.php';
require_once __DIR__ . '/includes/postpay_solusvm2/client.php';

header('Cache-Control: no-store');
$client = (new CurrentUser())->client();
if (!$client) {
    header('Location: login.php', true, 302);
    exit;
}
$url = postpay_solusvm2_login_url((int) $client->id);
if ($url === null) {
    http_response_code(503);
    echo '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>SolusVM 2</title></head><body>'
        . '<h1>SolusVM 2 is not reachable right now</h1>'
        . '<p>Please try again in a minute. <a href="clientarea.php">Back to the client area</a></p></body></html>';
    exit;
}
header('Location: ' . $url, true, 302);
exit;
