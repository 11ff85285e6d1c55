//! Diesel table definitions, written by hand to match `migrations/` (one schema for both
//! backends: only the column types that `MultiConnection` supports).

diesel::table! {
    communities (id) {
        id -> Text,
        name -> Text,
        district -> Text,
        street -> Text,
        division_code -> Text,
        timezone -> Text,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        street_id -> Text,
    }
}

diesel::table! {
    districts (id) {
        id -> Text,
        name -> Text,
        division_code -> Text,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    streets (id) {
        id -> Text,
        district_id -> Text,
        name -> Text,
        code -> Text,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        display_name -> Text,
        phone -> Nullable<Text>,
        role -> Text,
        community_id -> Nullable<Text>,
        active -> Bool,
        password_hash -> Text,
        credentials_changed_at -> Timestamp,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        phone_bidx -> Nullable<Text>,
        street_id -> Nullable<Text>,
        district_id -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Text,
        family_id -> Text,
        user_id -> Text,
        token_hash -> Text,
        issued_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    login_failures (username) {
        username -> Text,
        failures -> Integer,
        window_started_at -> Timestamp,
        locked_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    grids (id) {
        id -> Text,
        community_id -> Text,
        code -> Text,
        name -> Text,
        description -> Nullable<Text>,
        station_name -> Nullable<Text>,
        station_address -> Nullable<Text>,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    grid_assignments (grid_id, user_id) {
        grid_id -> Text,
        user_id -> Text,
        is_primary -> Bool,
        created_at -> Timestamp,
    }
}

diesel::table! {
    households (id) {
        id -> Text,
        grid_id -> Text,
        community_id -> Text,
        building -> Text,
        unit -> Text,
        room -> Text,
        head_name -> Text,
        phone -> Nullable<Text>,
        tag -> Text,
        tag_reasons -> Text,
        tag_note -> Nullable<Text>,
        tag_set_at -> Nullable<Timestamp>,
        tag_set_by -> Nullable<Text>,
        tag_review_due_on -> Nullable<Date>,
        notes -> Nullable<Text>,
        member_count -> Integer,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        removed_at -> Nullable<Timestamp>,
        removed_reason -> Nullable<Text>,
        removed_note -> Nullable<Text>,
        created_by -> Nullable<Text>,
        create_digest -> Nullable<Text>,
        phone_bidx -> Nullable<Text>,
        erased_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    members (id) {
        id -> Text,
        household_id -> Text,
        name -> Text,
        gender -> Text,
        birth_date -> Nullable<Date>,
        id_number -> Nullable<Text>,
        phone -> Nullable<Text>,
        relation -> Text,
        living_alone -> Bool,
        disability_grade -> Nullable<Integer>,
        chronic_illness -> Bool,
        serious_illness -> Bool,
        low_income -> Bool,
        extreme_poverty -> Bool,
        notes -> Nullable<Text>,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        removed_at -> Nullable<Timestamp>,
        created_by -> Nullable<Text>,
        create_digest -> Nullable<Text>,
        id_number_bidx -> Nullable<Text>,
        phone_bidx -> Nullable<Text>,
    }
}

diesel::table! {
    tag_changes (id) {
        id -> Text,
        household_id -> Text,
        community_id -> Text,
        grid_id -> Text,
        from_tag -> Text,
        to_tag -> Text,
        reasons -> Text,
        note -> Nullable<Text>,
        proposed_by -> Text,
        proposed_at -> Timestamp,
        status -> Text,
        decided_by -> Nullable<Text>,
        decided_at -> Nullable<Timestamp>,
        decision_note -> Nullable<Text>,
    }
}

diesel::table! {
    service_plans (id) {
        id -> Text,
        community_id -> Text,
        tag -> Text,
        review_interval_days -> Integer,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    service_templates (id) {
        id -> Text,
        plan_id -> Text,
        community_id -> Text,
        tag -> Text,
        name -> Text,
        kind -> Text,
        interval_days -> Integer,
        active -> Bool,
        position -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    visits (id) {
        id -> Text,
        household_id -> Text,
        community_id -> Text,
        grid_id -> Text,
        worker_id -> Text,
        kind -> Text,
        visited_at -> Timestamp,
        notes -> Nullable<Text>,
        findings -> Text,
        location_lat -> Nullable<Double>,
        location_lng -> Nullable<Double>,
        location_accuracy_m -> Nullable<Double>,
        content_hash -> Text,
        received_at -> Timestamp,
        version -> Integer,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    tasks (id) {
        id -> Text,
        household_id -> Text,
        template_id -> Text,
        community_id -> Text,
        grid_id -> Text,
        tag -> Text,
        kind -> Text,
        assignee_id -> Nullable<Text>,
        due_on -> Date,
        status -> Text,
        completed_at -> Nullable<Timestamp>,
        visit_id -> Nullable<Text>,
        cancel_reason -> Nullable<Text>,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        at -> Timestamp,
        actor_id -> Nullable<Text>,
        action -> Text,
        entity_type -> Text,
        entity_id -> Nullable<Text>,
        community_id -> Nullable<Text>,
        summary -> Text,
        request_id -> Nullable<Text>,
    }
}

diesel::table! {
    /// The change log of the sync feed (written by triggers; `txid` on PostgreSQL is read in SQL only).
    sync_log (seq) {
        seq -> BigInt,
        at -> Timestamp,
        entity -> Text,
        entity_id -> Text,
        community_id -> Nullable<Text>,
        grid_id -> Nullable<Text>,
        old_grid_id -> Nullable<Text>,
        household_id -> Nullable<Text>,
        event -> Nullable<Text>,
        detail -> Nullable<Text>,
        event_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    event_counter (one) {
        one -> Bool,
        last -> BigInt,
        pruned_through -> BigInt,
    }
}

diesel::table! {
    household_suggestions (household_id) {
        household_id -> Text,
        computed_on -> Date,
        valid_until -> Date,
        suggestion -> Text,
    }
}

diesel::table! {
    event_marks (event, entity_id, due_on) {
        event -> Text,
        entity_id -> Text,
        due_on -> Date,
        at -> Timestamp,
    }
}

diesel::table! {
    webhooks (id) {
        id -> Text,
        community_id -> Nullable<Text>,
        url -> Text,
        types -> Text,
        secret -> Text,
        previous_secret -> Nullable<Text>,
        previous_secret_until -> Nullable<Timestamp>,
        active -> Bool,
        description -> Nullable<Text>,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> Integer,
        cursor -> BigInt,
        attempts -> Integer,
        failing_since -> Nullable<Timestamp>,
        next_attempt_at -> Timestamp,
        last_success_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        disabled_reason -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        lease_token -> Nullable<Text>,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> BigInt,
        webhook_id -> Text,
        event_id -> BigInt,
        event -> Text,
        attempt -> Integer,
        at -> Timestamp,
        outcome -> Text,
        status_code -> Nullable<Integer>,
        latency_ms -> Integer,
        error -> Nullable<Text>,
        next_attempt_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    webhook_dead_letters (webhook_id, event_id) {
        webhook_id -> Text,
        event_id -> BigInt,
        event -> Text,
        body -> Text,
        parked_at -> Timestamp,
        attempts -> Integer,
        last_error -> Nullable<Text>,
        resend_requested_at -> Nullable<Timestamp>,
        resent_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sync_operations (user_id, op_id) {
        user_id -> Text,
        op_id -> Text,
        kind -> Text,
        entity -> Nullable<Text>,
        entity_id -> Nullable<Text>,
        at -> Timestamp,
    }
}

diesel::table! {
    /// Every data key that sealed values (see `db::keys`); retired once none uses it.
    data_keys (id) {
        id -> Text,
        created_at -> Timestamp,
        retired_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// Roster imports: the uploaded file, its dry run and its commit.
    imports (id) {
        id -> Text,
        community_id -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        status -> Text,
        format -> Text,
        file_name -> Nullable<Text>,
        file_sha256 -> Text,
        file -> Binary,
        summary -> Text,
        errors -> Text,
        error_count -> Integer,
        basis -> Text,
        committed_at -> Nullable<Timestamp>,
        committed_by -> Nullable<Text>,
        outcome -> Nullable<Text>,
        progress_done -> Integer,
        progress_total -> Integer,
        failure -> Nullable<Text>,
        missing_basis -> Text,
        errors_file -> Nullable<Binary>,
    }
}

diesel::joinable!(users -> communities (community_id));
diesel::joinable!(communities -> streets (street_id));
diesel::joinable!(streets -> districts (district_id));
diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(grids -> communities (community_id));
diesel::joinable!(grid_assignments -> grids (grid_id));
diesel::joinable!(grid_assignments -> users (user_id));
diesel::joinable!(households -> grids (grid_id));
diesel::joinable!(members -> households (household_id));
diesel::joinable!(household_suggestions -> households (household_id));
diesel::joinable!(tag_changes -> households (household_id));
diesel::joinable!(service_templates -> service_plans (plan_id));
diesel::joinable!(tasks -> households (household_id));
diesel::joinable!(tasks -> service_templates (template_id));
diesel::joinable!(visits -> households (household_id));

diesel::allow_tables_to_appear_in_same_query!(
    imports,
    sync_log,
    sync_operations,
    communities,
    districts,
    streets,
    users,
    refresh_tokens,
    login_failures,
    grids,
    grid_assignments,
    households,
    members,
    tag_changes,
    service_plans,
    service_templates,
    visits,
    tasks,
    audit_events,
    data_keys,
    event_counter,
    event_marks,
    household_suggestions,
    webhooks,
    webhook_deliveries,
    webhook_dead_letters,
);
