<?php
/**
 * Copy to config.php (same folder) and fill in. Keep config.php readable by the web server only.
 */
return [
    // Where WHMCS reaches the postpay signup service (server to server; may be an internal address).
    'url' => 'https://signup.example.com',
    // The same value as POSTPAY_PANEL_SHARED_SECRET on the postpay side (`openssl rand -hex 32`).
    'shared_secret' => '',
    // Seconds to wait for postpay before showing the homepage without the panel (and to connect).
    'timeout_seconds' => 5,
    'connect_timeout_seconds' => 2,
    // Who may use "Log in to SolusVM 2" besides the client's owner: the name of a WHMCS user permission
    // (e.g. 'productsso'), or '' for the owner alone. SolusVM 2 controls the account's virtual machines.
    'sso_permission' => '',
];
