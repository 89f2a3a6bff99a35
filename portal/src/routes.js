// The portal's pages by hash route (see router.js for what the fields mean).
import * as account from "./pages/account.js";
import * as audit from "./pages/admin/audit.js";
import * as enroll from "./pages/admin/enroll.js";
import * as managePatients from "./pages/admin/patients.js";
import * as tokens from "./pages/admin/tokens.js";
import * as breakGlass from "./pages/break-glass.js";
import * as login from "./pages/login.js";
import * as patient from "./pages/patient.js";
import * as patients from "./pages/patients.js";
import * as setup from "./pages/setup.js";
import * as welcome from "./pages/welcome.js";

export const table = {
  home: "#/patients",
  signIn: "/login",
  routes: [
    // A first sign-in needs an authenticator app: set up before any session.
    { path: "/setup", page: setup, access: "anyone" },
    // The onboarding link: a first password and the authenticator in one visit.
    { path: "/welcome/:username/:passwordToken/:otpToken", page: welcome, access: "anyone" },
    { path: "/welcome", page: welcome, access: "anyone" },
    { path: "/login", page: login, access: "signed-out" },
    { path: "/patients", page: patients },
    { path: "/patient/:pseudonym", page: patient },
    { path: "/break-glass", page: breakGlass },
    { path: "/account", page: account },
    // Administrators only; the server checks each of their requests.
    { path: "/admin/patients", page: managePatients },
    { path: "/admin/audit", page: audit },
    { path: "/admin/enroll", page: enroll },
    { path: "/admin/tokens", page: tokens },
  ],
};
