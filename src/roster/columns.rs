//! The roster's columns: one definition serves the template, its explanation sheet, the header
//! check of an upload and the export, so what is written can always be read back.

/// A column of the roster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    GridCode,
    Building,
    Unit,
    Room,
    HeadName,
    HouseholdPhone,
    HouseholdNotes,
    Name,
    Gender,
    BirthDate,
    IdNumber,
    MemberPhone,
    Relation,
    LivingAlone,
    DisabilityGrade,
    ChronicIllness,
    SeriousIllness,
    LowIncome,
    ExtremePoverty,
    Notes,
}

/// What the template's explanation sheet says of a column.
pub struct Spec {
    pub column: Column,
    /// The header, as written in the first row.
    pub header: &'static str,
    /// Of the household (repeated or left blank on its following rows) or of the member.
    pub household: bool,
    pub required: bool,
    /// The allowed values of an enumeration (a list validation in the template).
    pub choices: &'static [&'static str],
    pub help: &'static str,
}

const YES_NO: &[&str] = &["是", "否"];

/// Every column, in the template's order.
pub const COLUMNS: &[Spec] = &[
    Spec {
        column: Column::GridCode,
        header: "网格编码",
        household: true,
        required: true,
        choices: &[],
        help: "14 位网格编码 (CJ/T 349)，前 6 位为本社区的行政区划代码；请设为文本格式",
    },
    Spec {
        column: Column::Building,
        header: "楼栋",
        household: true,
        required: true,
        choices: &[],
        help: "如 3号楼；最多 32 字",
    },
    Spec {
        column: Column::Unit,
        header: "单元",
        household: true,
        required: true,
        choices: &[],
        help: "如 2单元；最多 32 字",
    },
    Spec {
        column: Column::Room,
        header: "房号",
        household: true,
        required: true,
        choices: &[],
        help: "如 301；请设为文本格式以保留开头的 0；最多 32 字",
    },
    Spec {
        column: Column::HeadName,
        header: "户主姓名",
        household: true,
        required: true,
        choices: &[],
        help: "最多 32 字",
    },
    Spec {
        column: Column::HouseholdPhone,
        header: "联系电话",
        household: true,
        required: false,
        choices: &[],
        help: "户的联系电话：手机 (11 位) 或带区号的固话，如 0531-82610000",
    },
    Spec {
        column: Column::HouseholdNotes,
        header: "户备注",
        household: true,
        required: false,
        choices: &[],
        help: "关于这一户的说明；最多 2000 字",
    },
    Spec {
        column: Column::Name,
        header: "成员姓名",
        household: false,
        required: true,
        choices: &[],
        help: "每位成员一行；最多 32 字",
    },
    Spec {
        column: Column::Gender,
        header: "性别",
        household: false,
        required: true,
        choices: &["男", "女"],
        help: "男 或 女；须与身份证号一致",
    },
    Spec {
        column: Column::BirthDate,
        header: "出生日期",
        household: false,
        required: false,
        choices: &[],
        help: "如 1941-03-02 (也可 1941/3/2、1941.3.2、1941年3月2日)；有身份证号时可留空",
    },
    Spec {
        column: Column::IdNumber,
        header: "身份证号",
        household: false,
        required: false,
        choices: &[],
        help: "18 位居民身份证号；请设为文本格式，否则 Excel 只保留 15 位数字",
    },
    Spec {
        column: Column::MemberPhone,
        header: "成员电话",
        household: false,
        required: false,
        choices: &[],
        help: "成员本人的电话：手机或带区号的固话",
    },
    Spec {
        column: Column::Relation,
        header: "与户主关系",
        household: false,
        required: true,
        choices: &["户主", "配偶", "子女", "父母", "孙子女", "其他"],
        help: "户主、配偶、子女、父母、孙子女 或 其他",
    },
    Spec {
        column: Column::LivingAlone,
        header: "独居",
        household: false,
        required: false,
        choices: YES_NO,
        help: "是 或 否 (留空为否)",
    },
    Spec {
        column: Column::DisabilityGrade,
        header: "残疾等级",
        household: false,
        required: false,
        choices: &["一级", "二级", "三级", "四级", "无"],
        help: "一级 (最重) 至 四级；无残疾留空或填 无",
    },
    Spec {
        column: Column::ChronicIllness,
        header: "慢性病",
        household: false,
        required: false,
        choices: YES_NO,
        help: "是 或 否 (留空为否)",
    },
    Spec {
        column: Column::SeriousIllness,
        header: "重病",
        household: false,
        required: false,
        choices: YES_NO,
        help: "是 或 否 (留空为否)",
    },
    Spec {
        column: Column::LowIncome,
        header: "低保",
        household: false,
        required: false,
        choices: YES_NO,
        help: "是 或 否 (留空为否)",
    },
    Spec {
        column: Column::ExtremePoverty,
        header: "特困",
        household: false,
        required: false,
        choices: YES_NO,
        help: "是 或 否 (留空为否)",
    },
    Spec {
        column: Column::Notes,
        header: "备注",
        household: false,
        required: false,
        choices: &[],
        help: "关于这位成员的说明；最多 2000 字",
    },
];

impl Column {
    pub fn spec(self) -> &'static Spec {
        COLUMNS.iter().find(|s| s.column == self).expect("every column has a spec")
    }

    pub fn header(self) -> &'static str {
        self.spec().header
    }

    /// The column a header names: trimmed, full-width forms and a required-marker `*` ignored.
    pub fn from_header(header: &str) -> Option<Column> {
        let h = super::cells::halfwidth(header);
        let h = h.trim().trim_end_matches('*').trim_start_matches('*').trim();
        COLUMNS.iter().find(|s| s.header == h).map(|s| s.column)
    }
}
