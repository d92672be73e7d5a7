<?php
/**
 * postpay for WHMCS: the SolusVM 2 panel on the client-area homepage.
 *
 * "Not enrolled in SolusVM 2" (a link to postpay's landing page), "Finish signing up" (a button to
 * solusvm2_finish_signup.php) or "Enrolled in SolusVM 2" (a "Log in to SolusVM 2" button, the month's
 * usage so far and the latest invoices). The panel comes from postpay, which knows who is enrolled. The
 * button points at solusvm2_sso.php, which asks postpay for a login link only when it is clicked:
 * a link lives at most a minute, so it cannot be minted when the page is drawn.
 */

use WHMCS\View\Menu\Item;

if (!defined('WHMCS')) {
    die('This file cannot be accessed directly');
}

require_once __DIR__ . '/../postpay_solusvm2/client.php';

add_hook('ClientAreaHomepagePanels', 1, function (Item $homePagePanels) {
    $client = Menu::context('client');
    if (!$client) {
        return;
    }
    $panel = postpay_solusvm2_panel((int) $client->id);
    if ($panel === null) {
        return; // postpay did not answer: the homepage shows without the panel rather than a broken one
    }
    $homePagePanels->addChild('postpay_solusvm2', [
        'label' => $panel['title'],
        'icon' => 'fa-server',
        'order' => 25,
        'extras' => ['color' => postpay_solusvm2_panel_colour($panel)],
        'bodyHtml' => $panel['html'],
    ]);
});
